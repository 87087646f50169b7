/* store_async.h -- the store seen from the loop thread: writes run as group-commit operations on
 * the store's writer thread and their answers come back to the loop, after the commit. */
#ifndef AF_STORE_ASYNC_H
#define AF_STORE_ASYNC_H

#include <uv.h>
#include "store/store.h"

typedef struct af_store_async_s af_store_async_t;

/* Called on the loop thread once the operation's transaction committed (rc 0) or failed (rc is
 * the operation's own error or the commit's). */
typedef void (*af_store_async_done_fn)(void *ud, int rc);

/* A writer over s (borrowed; from now on it belongs to the writer thread: call nothing else on
 * it until af_store_async_free). max_batch bounds the operations of one transaction (<= 0:
 * 1024). Returns a new writer, or NULL with err. */
af_store_async_t *af_store_async_new(uv_loop_t *loop, af_store_t *s, int max_batch,
                                     af_error_t *err);

/* Queues op to run in the next group transaction; done (may be NULL) is called on the loop
 * thread after the commit. From the loop thread only. Returns 0, or a negative code (then done
 * is never called). */
int af_store_async_submit(af_store_async_t *a, af_store_op_fn op, af_store_async_done_fn done,
                          void *ud);

/* Operations submitted and not yet answered. */
int64_t af_store_async_pending(const af_store_async_t *a);
/* Operations submitted so far (loop thread). */
uint64_t af_store_async_submitted(const af_store_async_t *a);

/* Runs everything submitted, answers it (the done callbacks run inside this call) and stops the
 * thread; from then on af_store_async_submit returns AF_ESTATE. The loop handle is closed (run
 * the loop once more to release it). a may be NULL. */
void af_store_async_close(af_store_async_t *a);

/* Closes (if not yet) and frees the writer. a may be NULL. */
void af_store_async_free(af_store_async_t *a);

#endif
