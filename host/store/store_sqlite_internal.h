/* store_sqlite_internal.h -- what the files of the SQLite store backend share: the store struct
 * and the methods implemented outside store_sqlite.c (store_sqlite_triggers.c). */
#ifndef AF_STORE_SQLITE_INTERNAL_H
#define AF_STORE_SQLITE_INTERNAL_H

#include "store/sqlite_internal.h"
#include "store/store_internal.h"

typedef struct af__sqlite_store_s {
    af_store_t base;
    af__sqlite_t c;
    af_queue_t *queue;
} af__sqlite_store_t;

#define AF__STORE_CONN(s) (&((af__sqlite_store_t *)(s))->c)

/* Methods of the store's table (store.h has their contracts). */
int af__sqlite_trigger_create(af_store_t *s, const af_trigger_rec_t *t, char *id_out,
                              af_error_t *err);
int af__sqlite_trigger_get(af_store_t *s, const char *id, af_trigger_rec_t *out, af_error_t *err);
int af__sqlite_trigger_list(af_store_t *s, const char *workflow_id, af_trigger_rec_t **out,
                            size_t *n, af_error_t *err);
int af__sqlite_trigger_update(af_store_t *s, const af_trigger_rec_t *t, af_error_t *err);
int af__sqlite_trigger_delete(af_store_t *s, const char *id, af_error_t *err);
int af__sqlite_trigger_delete_source(af_store_t *s, const char *workflow_id, const char *source,
                                     af_error_t *err);
int af__sqlite_webhook_register(af_store_t *s, const af_webhook_rec_t *w, char *id_out,
                                af_error_t *err);
int af__sqlite_webhook_find(af_store_t *s, const char *path, af_webhook_rec_t *out,
                            af_error_t *err);
int af__sqlite_webhook_list(af_store_t *s, const char *cursor, int limit, af_webhook_rec_t **out,
                            size_t *n, char *next_cursor, af_error_t *err);
int af__sqlite_webhook_seen(af_store_t *s, const char *scope, const char *msg_id,
                            const char *execution_id, int *duplicate, char *first_execution_id,
                            af_error_t *err);
int af__sqlite_webhook_seen_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed,
                                  af_error_t *err);

int af__sqlite_trigger_state_get(af_store_t *s, const char *trigger_id, af_trigger_state_t *out,
                                 af_error_t *err);
int af__sqlite_trigger_state_put(af_store_t *s, const char *trigger_id,
                                 const af_trigger_state_t *st, af_error_t *err);
int af__sqlite_event_put(af_store_t *s, const af_event_rec_t *e, int *duplicate, af_error_t *err);
int af__sqlite_event_list(af_store_t *s, int64_t from_ms, int64_t to_ms, const char *cursor,
                          int limit, af_event_rec_t **out, size_t *n, char *next_cursor,
                          af_error_t *err);
int af__sqlite_event_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed, af_error_t *err);
/* Parses a list cursor "created_at:id" (AF_EINVAL "malformed cursor"). */
int af__sqlite_parse_cursor(const char *cursor, int64_t *at, char *id, size_t size,
                            af_error_t *err);

#endif
