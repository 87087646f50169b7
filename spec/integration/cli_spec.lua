-- The `agentflow` command line as a user meets it: help and usage errors, --input, the --json
-- execution record, failing workflows, secret masking, concurrency, Lua budgets and the
-- sub-workflow depth limit. Workflows come from examples/ and spec/integration/fixtures/.
local helpers = require "spec.helpers"

local run, example, fixture = helpers.run, helpers.example, helpers.fixture
local null = helpers.null

local function ok_run(r, code)
  assert.are.equal(code or 0, r.code, helpers.describe_run(r))
end

describe("agentflow", function()
  describe("help and usage", function()
    it("--help prints the usage on stdout and exits 0", function()
      for _, flag in ipairs({ "--help", "-h" }) do
        local r = run({ flag })
        ok_run(r)
        assert.truthy(r.stdout:find("^usage: agentflow"), r.stdout)
        assert.truthy(r.stdout:find("run FILE.lua", 1, true))
        assert.truthy(r.stdout:find("check FILE.lua", 1, true))
      end
    end)

    it("without arguments prints the usage on stderr and exits 2", function()
      local r = run({})
      ok_run(r, 2)
      assert.are.equal("", r.stdout)
      assert.truthy(r.stderr:find("usage: agentflow", 1, true))
    end)

    it("--version prints the version", function()
      local r = run({ "--version" })
      ok_run(r)
      assert.truthy(r.stdout:find("^agentflow %d+%.%d+%.%d+"), r.stdout)
    end)

    it("COMMAND --help prints that command's usage and exits 0", function()
      local r = run({ "run", "--help" })
      ok_run(r)
      assert.truthy(r.stdout:find("^usage: agentflow run FILE.lua"), r.stdout)
      assert.truthy(r.stdout:find("--input", 1, true))
      assert.truthy(r.stdout:find("--json", 1, true))
      r = run({ "check", "--help" })
      ok_run(r)
      assert.truthy(r.stdout:find("^usage: agentflow check FILE.lua"), r.stdout)
      assert.truthy(r.stdout:find("--format", 1, true))
    end)

    it("an unknown command exits 2 and says which", function()
      local r = run({ "frobnicate" })
      ok_run(r, 2)
      assert.are.equal("", r.stdout)
      assert.truthy(r.stderr:find("unknown command 'frobnicate'", 1, true), r.stderr)
    end)

    it("an unknown option exits 2 and says which", function()
      local r = run({ "run", example("hello.lua"), "--colour" })
      ok_run(r, 2)
      assert.are.equal("", r.stdout)
      assert.truthy(r.stderr:find("unknown option '--colour'", 1, true), r.stderr)
      r = run({ "check", example("hello.lua"), "--verbose" })
      ok_run(r, 2)
      assert.truthy(r.stderr:find("unknown option '--verbose'", 1, true), r.stderr)
    end)

    it("missing or bad arguments exit 2", function()
      ok_run(run({ "run" }), 2)
      ok_run(run({ "check" }), 2)
      ok_run(run({ "run", example("hello.lua"), "--input" }), 2)
      ok_run(run({ "run", example("hello.lua"), example("fan-out.lua") }), 2)
      ok_run(run({ "check", example("hello.lua"), "--format", "xml" }), 2)
      ok_run(run({ "run", example("hello.lua"), "--max-instructions", "10" }), 2)
      ok_run(run({ "run", example("hello.lua"), "--max-memory", "1KB" }), 2)
      local r = run({ "run", "no/such/workflow.lua" })
      ok_run(r, 2)
      assert.truthy(r.stderr:find("no/such/workflow.lua", 1, true), r.stderr)
    end)
  end)

  describe("run --input", function()
    it("takes JSON that replaces sample_input", function()
      local r = run({ "run", example("hello.lua"), "--input", '{"name": "Grace", "lang": "fr"}' })
      ok_run(r)
      assert.are.equal("Bonjour, Grace!", r.json.email.body)
      assert.are.equal("grace@example.com", r.json.email.to)
    end)

    it("reads @FILE", function()
      local tmp = helpers.tmpfile(helpers.encode({ ticket = {
        id = "T-7", customer_id = "cus-12", subject = "Refund please",
        body = "I was charged twice for my subscription, please refund the second charge.",
      } }))
      local r = run({ "run", example("support-triage.lua"), "--input", "@" .. tmp, "--json" })
      os.remove(tmp)
      ok_run(r)
      local res = r.json.result
      assert.are.equal("T-7", res.ticket)
      assert.are.equal("billing", res.category)
      assert.are.equal("billing", res.team)
      assert.are.equal("review refund", res.action)
      assert.are.equal(false, res.paged)
      assert.are.same({ name = "Jo Smith", tier = "free", previous_tickets = 0 }, res.customer)
      -- the other branches of the switch and the condition
      assert.are.equal("billing", r.json.steps.route.port)
      assert.are.equal("no", r.json.steps.urgent.port)
      assert.are.equal("succeeded", r.json.steps.acknowledge.status)
      assert.are.equal("skipped", r.json.steps.page_oncall.status)
    end)

    it("refuses malformed JSON with exit 2 and a message saying where", function()
      local r = run({ "run", example("hello.lua"), "--input", '{"name": "Grace"' })
      ok_run(r, 2)
      assert.are.equal("", r.stdout)
      assert.truthy(r.stderr:find("--input", 1, true), r.stderr)
      assert.truthy(r.stderr:find("line 1", 1, true), r.stderr)
      local tmp = helpers.tmpfile("{ not json")
      r = run({ "run", example("hello.lua"), "--input", "@" .. tmp })
      os.remove(tmp)
      ok_run(r, 2)
      assert.truthy(r.stderr:find("--input", 1, true), r.stderr)
    end)

    it("reports a missing @FILE with exit 2", function()
      local r = run({ "run", example("hello.lua"), "--input", "@/no/such/input.json" })
      ok_run(r, 2)
      assert.truthy(r.stderr:find("/no/such/input.json", 1, true), r.stderr)
    end)
  end)

  describe("run: the --json record and the progress log", function()
    it("prints the execution record", function()
      local r = run({ "run", example("hello.lua"), "--json" })
      ok_run(r)
      local rec = r.json
      assert.truthy(tostring(rec.id):match("^%x+%-%x+%-%x+%-%x+%-%x+$"), tostring(rec.id))
      assert.are.equal("hello", rec.workflow)
      assert.are.equal("succeeded", rec.status)
      assert.is_number(rec.duration_ms)
      assert.are.equal(null, rec.error)
      assert.are.same(run({ "run", example("hello.lua") }).json, rec.result)
      for _, name in ipairs({ "greet", "email", "follow_up" }) do
        local s = rec.steps[name]
        assert.is_table(s, "no record of step " .. name)
        assert.are.equal("succeeded", s.status)
        assert.are.equal(1, s.attempts)
        assert.is_number(s.duration_ms)
        assert.is_not_nil(s.output)
      end
      assert.are.same({ text = "Hello, Ada!" }, rec.steps.greet.output)
    end)

    it("records ports of conditions and switches, and skipped steps", function()
      local r = run({ "run", example("support-triage.lua"), "--json" })
      ok_run(r)
      local steps = r.json.steps
      assert.are.equal("yes", steps.urgent.port)
      assert.are.equal(true, steps.urgent.output)
      assert.are.equal("outage", steps.route.port)
      for _, name in ipairs({ "billing", "engineering", "general", "acknowledge" }) do
        assert.are.equal("skipped", steps[name].status, name)
        assert.are.equal(0, steps[name].attempts, name)
        assert.is_nil(steps[name].output, name)
        assert.is_nil(steps[name].duration_ms, name)
      end
      for _, name in ipairs({ "incident", "page_oncall", "assign", "notify", "summary" }) do
        assert.are.equal("succeeded", steps[name].status, name)
      end
      assert.are.same(steps.summary.output, r.json.result)
    end)

    it("counts attempts of retried steps and keeps the errors of failed ones", function()
      local r = run({ "run", example("retries-and-errors.lua"), "--json" })
      ok_run(r)
      local s = r.json.steps
      -- the workflow's retry policy: succeeds on attempt 3
      assert.are.equal("succeeded", s.flaky_inventory.status)
      assert.are.equal(3, s.flaky_inventory.attempts)
      -- its own policy: succeeds on attempt 2
      assert.are.equal("succeeded", s.flaky_pricing.status)
      assert.are.equal(2, s.flaky_pricing.attempts)
      -- non-retryable code: one attempt, routed to the handler
      assert.are.equal("failed", s.validate_coupon.status)
      assert.are.equal(1, s.validate_coupon.attempts)
      assert.are.same({ code = "INVALID", message = "coupon 'SPRING-??' is malformed" },
                      s.validate_coupon.error)
      assert.are.equal("succeeded", s.coupon_rejected.status)
      assert.are.equal("validate_coupon", s.coupon_rejected.output.failed_step)
      -- timeout, continued
      assert.are.equal("failed", s.carrier_quote.status)
      assert.are.equal(1, s.carrier_quote.attempts)
      assert.are.equal("TIMEOUT", s.carrier_quote.error.code)
      assert.are.equal(null, s.carrier_quote.output)
      assert.are.equal("succeeded", s.shipping_quote.status)
      -- af.fatal: never retried although the step allows 3 attempts
      assert.are.equal("failed", s.lookup_account.status)
      assert.are.equal(1, s.lookup_account.attempts)
      assert.are.equal("NOT_FOUND", s.lookup_account.error.code)
      assert.are.equal("succeeded", r.json.status)
    end)

    it("shows the retry wait in the progress log", function()
      -- flaky_inventory uses the workflow's fixed backoff of 10ms: the wait is exactly 10ms
      local r = run({ "run", example("retries-and-errors.lua") })
      ok_run(r)
      local line = r.stderr:match("[^\n]*retry%s+flaky_inventory%s+attempt 1[^\n]*")
      assert.truthy(line, r.stderr)
      assert.truthy(line:find("retrying in 10ms", 1, true), "wrong wait in: " .. line)
    end)

    it("--quiet leaves stderr empty", function()
      local r = run({ "run", example("hello.lua"), "--quiet" })
      ok_run(r)
      assert.are.equal("", r.stderr)
      assert.are.equal("Hello, Ada!", r.json.email.body)
    end)
  end)

  describe("output", function()
    -- objects come from Lua tables, whose order differs from one process to the next
    local function same_every_time(args)
      local first = run(args)
      ok_run(first)
      for _ = 1, 4 do
        local again = run(args)
        assert.are.equal(first.stdout, again.stdout, "differs between runs: " .. first.cmd)
      end
    end

    it("of run is the same bytes every time", function()
      same_every_time({ "run", example("support-triage.lua"), "--quiet" })
    end)

    it("of check shows when each cron schedule fires next", function()
      local r = run({ "check", fixture("schedules.lua"), "--format", "json" })
      ok_run(r)
      local year = tonumber(os.date("!%Y"))
      assert.are.same({ ("%d-01-01T00:00:00.000Z"):format(year + 1),
                        ("%d-01-01T00:00:00.000Z"):format(year + 2),
                        ("%d-01-01T00:00:00.000Z"):format(year + 3) }, r.json.triggers[1].next_runs)
      local noon = r.json.triggers[2].next_runs -- 12:00 in Tokyo is 03:00 UTC, daily
      assert.are.equal(3, #noon)
      for i, at in ipairs(noon) do
        assert.truthy(at:match("T03:00:00%.000Z$"), at)
        assert.truthy(i == 1 or at > noon[i - 1])
      end
      assert.truthy(noon[1] > os.date("!%Y-%m-%dT%H:%M:%S"))
      assert.is_nil(r.json.triggers[3].next_runs) -- `every` runs from its last run
      local text = run({ "check", fixture("schedules.lua") })
      ok_run(text)
      assert.truthy(text.stdout:find("next runs:\n  schedule (" .. fixture("schedules.lua") .. ":4): "
                                     .. r.json.triggers[1].next_runs[1], 1, true), text.stdout)
    end)

    it("of check is the same bytes every time", function()
      same_every_time({ "check", example("triggers.lua"), "--format", "json" })
      same_every_time({ "check", example("triggers.lua") })
      same_every_time({ "check", example("triggers.lua"), "--format", "dot" })
    end)
  end)

  describe("a failing workflow", function()
    it("exits 1 and prints null as its result", function()
      local r = run({ "run", fixture("fails.lua") })
      ok_run(r, 1)
      assert.are.equal("null", r.stdout:match("^%s*(.-)%s*$"))
      assert.truthy(r.stderr:find("failed fails", 1, true), r.stderr)
      assert.truthy(r.stderr:find("PAYMENT_DECLINED", 1, true), r.stderr)
    end)

    it("has the error in its record", function()
      local r = run({ "run", fixture("fails.lua"), "--json" })
      ok_run(r, 1)
      local rec = r.json
      assert.are.equal("failed", rec.status)
      assert.are.equal(null, rec.result)
      assert.are.same({ code = "PAYMENT_DECLINED",
                        message = "step 'charge' failed: card declined" }, rec.error)
      assert.are.equal("succeeded", rec.steps.start.status)
      assert.are.equal("failed", rec.steps.charge.status)
      assert.are.equal(1, rec.steps.charge.attempts) -- retryable = false beats the policy
      assert.are.same({ code = "PAYMENT_DECLINED", message = "card declined" },
                      rec.steps.charge.error)
      assert.are.equal("cancelled", rec.steps.receipt.status)
      assert.are.equal(0, rec.steps.receipt.attempts)
    end)

    it("reports the workflow's step_timeout with its duration", function()
      local r = run({ "run", fixture("step_timeout_default.lua"), "--json" })
      ok_run(r, 1)
      assert.are.equal("TIMEOUT", r.json.steps.slow.error.code)
      assert.are.equal("timed out after 50ms", r.json.steps.slow.error.message)
    end)
  end)

  describe("secrets", function()
    local TOKEN = "tok-3f9a7c1e"

    it("are masked as *** in the result, the record and the log", function()
      for _, args in ipairs({ { "run", example("secrets.lua") },
                              { "run", example("secrets.lua"), "--json" } }) do
        local r = run(args, { DEMO_API_TOKEN = TOKEN })
        ok_run(r)
        assert.is_nil(r.stdout:find(TOKEN, 1, true), "token on stdout:\n" .. r.stdout)
        assert.is_nil(r.stderr:find(TOKEN, 1, true), "token on stderr:\n" .. r.stderr)
        assert.truthy(r.stdout:find("***", 1, true))
        assert.truthy(r.stderr:find("with token ***", 1, true), r.stderr)
      end
      local rec = run({ "run", example("secrets.lua"), "--json" }, { DEMO_API_TOKEN = TOKEN }).json
      assert.are.equal("***", rec.steps.build_request.output.headers.Authorization)
      assert.are.equal("token ***", rec.steps.audit.output.logged)
    end)

    it("are masked in error messages and failed runs", function()
      local PW = "pw-7d1c44b0e2"
      local r = run({ "run", fixture("secret_error.lua"), "--json" }, { SPEC_DB_PASSWORD = PW })
      ok_run(r, 1)
      assert.is_nil(r.stdout:find(PW, 1, true), r.stdout)
      assert.is_nil(r.stderr:find(PW, 1, true), r.stderr)
      assert.truthy(r.json.error.message:find("for password ***", 1, true), r.json.error.message)
      assert.truthy(r.json.steps.login.error.message:find("for password ***", 1, true))
      assert.truthy(r.stderr:find("connecting with password ***", 1, true), r.stderr)
    end)

    it("that are not set fail the step with SECRET_MISSING", function()
      local r = run({ "run", fixture("secret_error.lua"), "--json" }, { SPEC_DB_PASSWORD = false })
      ok_run(r, 1)
      assert.are.equal("SECRET_MISSING", r.json.steps.login.error.code)
      assert.truthy(r.json.error.message:find("SPEC_DB_PASSWORD", 1, true))
    end)
  end)

  describe("concurrency", function()
    it("runs two steps after the same step at the same time", function()
      local r = run({ "run", fixture("concurrent.lua"), "--json" })
      ok_run(r)
      local s = r.json.steps
      assert.are.equal("succeeded", s.sleeper.status)
      assert.are.equal("succeeded", s.delayer.status)
      assert.are.equal("slept", s.sleeper.output)
      assert.are.same({ delayed_ms = 200 }, s.delayer.output)
      -- one after the other, the run would last at least the sum of the two
      local sum = s.sleeper.duration_ms + s.delayer.duration_ms
      assert.is_true(r.json.duration_ms < sum, string.format(
        "execution took %.1fms, the two steps %.1fms + %.1fms: they did not overlap",
        r.json.duration_ms, s.sleeper.duration_ms, s.delayer.duration_ms))
    end)

    it("never ends a wait early, even after a busy step", function()
      local r = run({ "run", fixture("early_timer.lua"), "--json" })
      ok_run(r)
      -- libuv counts whole milliseconds: allow 1ms, no more
      for _, name in ipairs({ "delayer", "sleeper" }) do
        local d = r.json.steps[name].duration_ms
        assert.is_true(d >= 199, string.format("%s waited %.1fms for 200ms", name, d))
      end
    end)

    it("runs engine node types inside parallel groups and foreach bodies", function()
      local r = run({ "run", fixture("nested_nodes.lua"), "--json" })
      ok_run(r)
      assert.are.same({ echo = { v = 1 }, lua = 2 }, r.json.result.group)
      assert.are.same({ { v = "x" }, { v = "x" } }, r.json.result.each)
    end)
  end)

  describe("budgets", function()
    it("stop a step that never ends (instructions) after its sibling finished", function()
      local r = run({ "run", fixture("spin.lua"), "--json" })
      ok_run(r, 1)
      local rec = r.json
      assert.are.equal("failed", rec.status)
      assert.are.equal("BUDGET", rec.error.code)
      assert.truthy(rec.error.message:find("instruction budget", 1, true), rec.error.message)
      assert.are.equal("succeeded", rec.steps.quick.status)
      assert.are.equal("done", rec.steps.quick.output)
      assert.are.equal("failed", rec.steps.spin.status)
      assert.truthy(rec.steps.spin.error.message:find("instruction budget", 1, true))
      assert.are_not.equal("succeeded", rec.steps.never.status)
      local done = r.stderr:find("succeeded%s+quick")
      local stopped = r.stderr:find("failed%s+spin")
      assert.truthy(done and stopped and done < stopped, r.stderr)
    end)

    it("stop a step that allocates without end (memory)", function()
      local r = run({ "run", fixture("hog.lua"), "--json" })
      ok_run(r, 1)
      assert.are.equal("BUDGET", r.json.error.code)
      assert.truthy(r.json.error.message:find("memory budget", 1, true), r.json.error.message)
      assert.are.equal("failed", r.json.steps.hog.status)
    end)
  end)

  describe("sub-workflows", function()
    it("that call themselves stop at the depth limit with CALL_DEPTH", function()
      local r = run({ "run", fixture("recursive.lua"), "--json" })
      ok_run(r, 1)
      assert.are.equal("CALL_DEPTH", r.json.error.code)
      assert.truthy(r.json.error.message:find("nested deeper than", 1, true), r.json.error.message)
      assert.are.equal("failed", r.json.steps.again.status)
    end)
  end)

  describe("error routing", function()
    it("runs the dependents of a continued step, which see af.null for it", function()
      local r = run({ "run", fixture("continued.lua"), "--json" })
      ok_run(r)
      assert.are.equal("failed", r.json.steps.optional.status)
      assert.are.equal(null, r.json.steps.optional.output)
      assert.are.same({ is_null = true }, r.json.result.next)
    end)

    it("skips an unused handler, whose edge keeps the step out of the default result", function()
      local r = run({ "run", fixture("handler_result.lua"), "--json" })
      ok_run(r)
      assert.are.equal("succeeded", r.json.steps.work.status)
      assert.are.equal("skipped", r.json.steps.cleanup.status)
      assert.are.same({ ok = { fine = true } }, r.json.result)
    end)
  end)

  describe("memory", function()
    -- no input and no sample_input; step timeouts that do not fire
    for _, file in ipairs({ fixture("concurrent.lua"), example("fan-out.lua") }) do
      it("leaks nothing running " .. file .. " (valgrind)", function()
        local code, _, err = helpers.sh("valgrind -q --leak-check=full --errors-for-leak-kinds="
                                        .. "definite --error-exitcode=99 "
                                        .. helpers.quote(helpers.BIN) .. " run --quiet "
                                        .. helpers.quote(file) .. " >/dev/null")
        assert.are.equal(0, code, err)
      end)
    end
  end)
end)
