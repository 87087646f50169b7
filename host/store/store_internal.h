/* store_internal.h -- what a storage backend implements: the method table behind store.h and the
 * head every backend's store struct starts with. Not part of the interface. */
#ifndef AF_STORE_INTERNAL_H
#define AF_STORE_INTERNAL_H

#include "store/store.h"

/* Every slot is required. Calls arrive with their arguments checked by store.c (non-NULL store,
 * ids, output pointers). */
typedef struct af_store_vt_s {
    const char *name;
    void (*close)(af_store_t *s);
    int (*info)(af_store_t *s, af_store_info_t *info);
    af_queue_t *(*queue)(af_store_t *s);
    int (*begin)(af_store_t *s, af_error_t *err);
    int (*commit)(af_store_t *s, af_error_t *err);
    void (*rollback)(af_store_t *s);
    /* on 1: begins inside a transaction open no savepoint until flat(s, 0), which returns 1 when
     * a nested rollback happened meanwhile (its writes were not undone: the caller must roll the
     * whole transaction back). For group commit: savepoints per operation only when needed. */
    int (*flat)(af_store_t *s, int on);

    int (*workflow_create)(af_store_t *s, const af_workflow_t *w, char *id_out, af_error_t *err);
    int (*workflow_get)(af_store_t *s, const char *id, af_workflow_t *out, af_error_t *err);
    int (*workflow_list)(af_store_t *s, const char *project_id, const char *cursor, int limit,
                         af_workflow_t **out, size_t *n, char *next_cursor, af_error_t *err);
    int (*workflow_update)(af_store_t *s, const af_workflow_t *w, af_error_t *err);
    int (*workflow_delete)(af_store_t *s, const char *id, af_error_t *err);
    int (*workflow_find)(af_store_t *s, const char *name, af_workflow_t *out, af_error_t *err);
    int (*version_add)(af_store_t *s, const char *workflow_id, const char *lua_source,
                       const json_t *definition, int *version, af_error_t *err);
    int (*version_get)(af_store_t *s, const char *workflow_id, int version,
                       af_workflow_version_t *out, af_error_t *err);
    int (*version_list)(af_store_t *s, const char *workflow_id, af_workflow_version_t **out,
                        size_t *n, af_error_t *err);

    /* Inserts the execution row only; store.c wraps it with the job in one transaction. */
    int (*execution_insert)(af_store_t *s, af_execution_t *e, af_error_t *err);
    int (*execution_get)(af_store_t *s, const char *id, af_execution_t *out, af_error_t *err);
    int (*execution_set_status)(af_store_t *s, const char *id, const char *status,
                                const json_t *result, const char *error, int64_t wake_at,
                                int64_t at, af_error_t *err);
    /* Filters arrive NULL for "any" ("" is mapped to NULL by store.c). */
    int (*execution_list)(af_store_t *s, const char *workflow_id, const char *status,
                          const char *cursor, int limit, af_execution_t **out, size_t *n,
                          char *next_cursor, af_error_t *err);
    int (*execution_count)(af_store_t *s, const char *workflow_id, const char *status, int64_t *n,
                           af_error_t *err);
    int (*checkpoint_save)(af_store_t *s, const af_checkpoint_t *c, af_error_t *err);
    int (*checkpoints_load)(af_store_t *s, const char *execution_id, af_checkpoint_t **out,
                            size_t *n, af_error_t *err);
    int (*log_append)(af_store_t *s, const char *execution_id, int64_t at, const char *step,
                      const char *level, const char *message, int64_t *seq, af_error_t *err);
    int (*logs_load)(af_store_t *s, const char *execution_id, int64_t after_seq, int limit,
                     af_log_entry_t **out, size_t *n, af_error_t *err);
    int (*trigger_create)(af_store_t *s, const af_trigger_rec_t *t, char *id_out, af_error_t *err);
    int (*trigger_get)(af_store_t *s, const char *id, af_trigger_rec_t *out, af_error_t *err);
    int (*trigger_list)(af_store_t *s, const char *workflow_id, af_trigger_rec_t **out, size_t *n,
                        af_error_t *err);
    int (*trigger_update)(af_store_t *s, const af_trigger_rec_t *t, af_error_t *err);
    int (*trigger_delete)(af_store_t *s, const char *id, af_error_t *err);
    int (*trigger_delete_source)(af_store_t *s, const char *workflow_id, const char *source,
                                 af_error_t *err);
    int (*webhook_register)(af_store_t *s, const af_webhook_rec_t *w, char *id_out,
                            af_error_t *err);
    int (*webhook_find)(af_store_t *s, const char *path, af_webhook_rec_t *out, af_error_t *err);
    int (*webhook_list)(af_store_t *s, const char *cursor, int limit, af_webhook_rec_t **out,
                        size_t *n, char *next_cursor, af_error_t *err);
    int (*webhook_seen)(af_store_t *s, const char *scope, const char *msg_id,
                        const char *execution_id, int *duplicate, char *first_execution_id,
                        af_error_t *err);
    int (*webhook_seen_prune)(af_store_t *s, int64_t older_than_ms, int64_t *removed,
                              af_error_t *err);
    int (*trigger_state_get)(af_store_t *s, const char *trigger_id, af_trigger_state_t *out,
                             af_error_t *err);
    int (*trigger_state_put)(af_store_t *s, const char *trigger_id, const af_trigger_state_t *st,
                             af_error_t *err);
    int (*event_put)(af_store_t *s, const af_event_rec_t *e, int *duplicate, af_error_t *err);
    int (*event_list)(af_store_t *s, int64_t from_ms, int64_t to_ms, const char *cursor, int limit,
                      af_event_rec_t **out, size_t *n, char *next_cursor, af_error_t *err);
    int (*event_prune)(af_store_t *s, int64_t older_than_ms, int64_t *removed, af_error_t *err);
    int (*prune)(af_store_t *s, int64_t max_age_ms, int64_t max_count, int64_t *removed,
                 af_error_t *err);
    int (*compact)(af_store_t *s, af_error_t *err);
} af_store_vt_t;

struct af_store_s {
    const af_store_vt_t *vt;
};

/* The SQLite backend's open (store_sqlite.c); `path` is the database file. */
int af__store_sqlite_checkpoint_wal(af_store_t *s, int64_t *frames, af_error_t *err);
int af__store_sqlite_open(const char *path, const af_store_options_t *opts, af_store_t **out,
                          af_error_t *err);

#endif
