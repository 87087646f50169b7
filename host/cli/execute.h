/* execute.h -- `agentflow execute`: runs a stored workflow on a running `agentflow serve` through
 * its REST API (blocking libcurl calls) and prints the execution. */
#ifndef AF_CLI_EXECUTE_H
#define AF_CLI_EXECUTE_H

/* Runs `agentflow execute WORKFLOW [--input JSON|@FILE] [--server URL] [--wait SECONDS] [--json]`.
 * argv[0] is "execute"; argv is borrowed. WORKFLOW is a workflow id (a UUID) or a name (the newest
 * workflow of that name). The server is --server, else $AGENTFLOW_SERVER, else
 * http://127.0.0.1:8080. Prints the execution on stdout (pretty JSON with --json, else a summary:
 * status, id, duration, then the result or the error) and errors on stderr. Returns the exit
 * status: 0 succeeded (or accepted, with --wait 0), 1 failed, cancelled or not finished within
 * --wait, 2 usage error, unknown workflow, bad --input, a refused request or an unreachable
 * server. */
int af_cli_execute(int argc, char **argv);

#endif
