/* store_sqlite_triggers.c -- the SQLite store's triggers, webhook registrations and seen webhook
 * message ids: what the trigger machinery and the REST API keep about how workflows start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sqlite_internal.h"

#define CONN(s) AF__STORE_CONN(s)

static const char *const TRIGGER_TYPES[] = {"webhook", "schedule", "event", "poll",
                                            "manual",  "plugin",   NULL};
static const char *const TRIGGER_SOURCES[] = {"script", "api", NULL};

/* ---- triggers ------------------------------------------------------------------------------- */

#define TRIGGER_COLS                                                                               \
    "id, workflow_id, type, config, is_active, source, position, created_at, updated_at"

static int row_trigger(sqlite3_stmt *st, void *record) {
    af_trigger_rec_t *t = record;
    memset(t, 0, sizeof *t);
    af__sqlite_col_copy(st, 0, t->id, sizeof t->id);
    af__sqlite_col_copy(st, 1, t->workflow_id, sizeof t->workflow_id);
    af__sqlite_col_copy(st, 2, t->type, sizeof t->type);
    t->config = af__sqlite_col_json(st, 3);
    t->is_active = sqlite3_column_int(st, 4);
    af__sqlite_col_copy(st, 5, t->source, sizeof t->source);
    t->position = sqlite3_column_type(st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 6);
    t->created_at = sqlite3_column_int64(st, 7);
    t->updated_at = sqlite3_column_int64(st, 8);
    return 0;
}

/* One statement: the row is inserted only if the workflow exists, so no transaction is needed
 * and a concurrent delete of the workflow cannot leave an orphan behind. */
int af__sqlite_trigger_create(af_store_t *s, const af_trigger_rec_t *t, char *id_out,
                              af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "INSERT INTO triggers (" TRIGGER_COLS ")"
        " SELECT ?1, id, ?3, ?4, ?5, ?6, ?7, ?8, ?8 FROM workflows WHERE id = ?2";
    const char *source = t->source[0] ? t->source : "api";
    if (!af__sqlite_word_in(t->type, TRIGGER_TYPES)) {
        return af_error_set(
            err, AF_EINVAL,
            "unknown trigger type '%s' (webhook, schedule, event, poll, manual, plugin)", t->type);
    }
    if (!af__sqlite_word_in(source, TRIGGER_SOURCES)) {
        return af_error_set(err, AF_EINVAL, "trigger source must be script or api, not '%s'",
                            source);
    }
    char id[AF_STORE_ID_MAX];
    af__sqlite_id(t->id, id, sizeof id);
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    af__sqlite_bind_text(st, 2, t->workflow_id);
    af__sqlite_bind_text(st, 3, t->type);
    if ((rc = af__sqlite_bind_json(st, 4, t->config)) != 0) {
        return af_error_set(err, rc, "out of memory");
    }
    sqlite3_bind_int(st, 5, t->is_active != 0);
    af__sqlite_bind_text(st, 6, source);
    if (strcmp(source, "script") == 0 && t->position >= 0) {
        sqlite3_bind_int(st, 7, t->position);
    } /* else NULL */
    sqlite3_bind_int64(st, 8, af__sqlite_now(c));
    rc = af__sqlite_run(c, st, "create trigger", err);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        rc = af_error_set(err, AF_ENOTFOUND, "no workflow %s", t->workflow_id);
    }
    if (rc == 0 && id_out) {
        memcpy(id_out, id, sizeof id);
    }
    return rc;
}

int af__sqlite_trigger_get(af_store_t *s, const char *id, af_trigger_rec_t *out, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT " TRIGGER_COLS " FROM triggers WHERE id = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    rc = af__sqlite_one(c, st, row_trigger, out, "get trigger", err);
    if (rc == AF_ENOTFOUND) {
        rc = af_error_set(err, rc, "no trigger %s", id);
    }
    return rc;
}

int af__sqlite_trigger_list(af_store_t *s, const char *workflow_id, af_trigger_rec_t **out,
                            size_t *n, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char ALL[] = "SELECT " TRIGGER_COLS " FROM triggers ORDER BY created_at, id";
    static const char ONE[] = "SELECT " TRIGGER_COLS " FROM triggers WHERE workflow_id = ?1"
                              " ORDER BY created_at, id";
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, workflow_id ? ONE : ALL, &st, err);
    if (rc != 0) {
        return rc;
    }
    if (workflow_id) {
        af__sqlite_bind_text(st, 1, workflow_id);
    }
    rc = af__sqlite_rows(c, st, sizeof **out, row_trigger, "list triggers", (void **)out, n, NULL,
                         err);
    if (rc != 0) {
        af_trigger_recs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int af__sqlite_trigger_update(af_store_t *s, const af_trigger_rec_t *t, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char UPD[] =
        "UPDATE triggers SET config = ?2, is_active = ?3, updated_at = ?4 WHERE id = ?1";
    static const char HOOK[] = "UPDATE webhook_registrations SET config = ?2 WHERE trigger_id = ?1";
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st;
    if ((rc = af__sqlite_prep(c, UPD, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, t->id);
        if ((rc = af__sqlite_bind_json(st, 2, t->config)) != 0) {
            rc = af_error_set(err, rc, "out of memory");
        } else {
            sqlite3_bind_int(st, 3, t->is_active != 0);
            sqlite3_bind_int64(st, 4, af__sqlite_now(c));
            rc = af__sqlite_run(c, st, "update trigger", err);
            if (rc == 0 && sqlite3_changes(c->db) == 0) {
                rc = af_error_set(err, AF_ENOTFOUND, "no trigger %s", t->id);
            }
        }
    }
    if (rc == 0 && (rc = af__sqlite_prep(c, HOOK, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, t->id);
        if ((rc = af__sqlite_bind_json(st, 2, t->config)) != 0) {
            rc = af_error_set(err, rc, "out of memory");
        } else {
            rc = af__sqlite_run(c, st, "update webhook config", err);
        }
    }
    return af__sqlite_end(c, rc, err);
}

int af__sqlite_trigger_delete(af_store_t *s, const char *id, af_error_t *err) {
    static const char *const SQL[] = {
        "DELETE FROM triggers WHERE id = ?1",
        "DELETE FROM webhook_registrations WHERE trigger_id = ?1",
        "DELETE FROM trigger_state WHERE trigger_id = ?1",
        NULL,
    };
    return af__sqlite_delete_cascade(CONN(s), "trigger", id, SQL, err);
}

int af__sqlite_trigger_delete_source(af_store_t *s, const char *workflow_id, const char *source,
                                     af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char DEL_H[] = "DELETE FROM webhook_registrations WHERE trigger_id IN"
                                " (SELECT id FROM triggers WHERE workflow_id = ?1 AND source = ?2)";
    static const char DEL_T[] = "DELETE FROM triggers WHERE workflow_id = ?1 AND source = ?2";
    if (!af__sqlite_word_in(source, TRIGGER_SOURCES)) {
        return af_error_set(err, AF_EINVAL, "trigger source must be script or api, not '%s'",
                            source);
    }
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    const char *steps[] = {DEL_H, DEL_T};
    for (int i = 0; i < 2 && rc == 0; i++) {
        sqlite3_stmt *st;
        if ((rc = af__sqlite_prep(c, steps[i], &st, err)) == 0) {
            af__sqlite_bind_text(st, 1, workflow_id);
            af__sqlite_bind_text(st, 2, source);
            rc = af__sqlite_run(c, st, "delete triggers", err);
        }
    }
    return af__sqlite_end(c, rc, err);
}

/* ---- webhook registrations ------------------------------------------------------------------ */

#define WEBHOOK_COLS "id, workflow_id, trigger_id, path, methods, config, created_at"

static int row_webhook(sqlite3_stmt *st, void *record) {
    af_webhook_rec_t *w = record;
    int oom = 0;
    memset(w, 0, sizeof *w);
    af__sqlite_col_copy(st, 0, w->id, sizeof w->id);
    af__sqlite_col_copy(st, 1, w->workflow_id, sizeof w->workflow_id);
    af__sqlite_col_copy(st, 2, w->trigger_id, sizeof w->trigger_id);
    w->path = af__sqlite_col_dup(st, 3, &oom);
    w->methods = af__sqlite_col_dup(st, 4, &oom);
    w->config = af__sqlite_col_json(st, 5);
    w->created_at = sqlite3_column_int64(st, 6);
    if (oom) {
        af_webhook_rec_clear(w);
        return AF_ENOMEM;
    }
    return 0;
}

/* Paths are stored without their leading slashes, so "/a/b" and "a/b" are one path. */
static const char *bare_path(const char *path) {
    while (path && *path == '/') {
        path++;
    }
    return path;
}

/* Says who holds `path` when a registration could not take it: AF_EEXISTS naming the path and
 * the workflow, or AF_ENOTFOUND when nobody does (then the workflow was missing). */
static int path_conflict(af__sqlite_t *c, const char *path, const char *workflow_id,
                         af_error_t *err) {
    static const char SQL[] = "SELECT r.workflow_id, w.name FROM webhook_registrations r"
                              " LEFT JOIN workflows w ON w.id = r.workflow_id WHERE r.path = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, path);
    int row = 0;
    if ((rc = af__sqlite_first(c, st, &row, "find webhook", err)) != 0) {
        return rc;
    }
    if (!row) {
        return af_error_set(err, AF_ENOTFOUND, "no workflow %s", workflow_id);
    }
    const char *holder = (const char *)sqlite3_column_text(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    rc = af_error_set(err, AF_EEXISTS,
                      "webhook path '%s' is already registered by workflow '%s' (%s)", path,
                      name ? name : "?", holder ? holder : "?");
    sqlite3_reset(st);
    return rc;
}

/* One upsert: a new path is inserted (if the workflow exists); a path the same trigger of the
 * same workflow holds gets the new methods and config; a path held by another trigger is left
 * alone and no row comes back, which path_conflict then explains. */
int af__sqlite_webhook_register(af_store_t *s, const af_webhook_rec_t *w, char *id_out,
                                af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "INSERT INTO webhook_registrations (" WEBHOOK_COLS ")"
        " SELECT ?1, id, ?3, ?4, ?5, ?6, ?7 FROM workflows WHERE id = ?2"
        " ON CONFLICT (path) DO UPDATE SET methods = excluded.methods, config = excluded.config"
        " WHERE trigger_id IS excluded.trigger_id AND workflow_id = excluded.workflow_id"
        " RETURNING id";
    const char *path = bare_path(w->path);
    if (path == NULL || path[0] == '\0') {
        return af_error_set(err, AF_EINVAL, "a webhook registration needs a path");
    }
    char id[AF_STORE_ID_MAX];
    af__sqlite_id(w->id, id, sizeof id);
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    af__sqlite_bind_text(st, 2, w->workflow_id);
    af__sqlite_bind_text(st, 3, w->trigger_id[0] ? w->trigger_id : NULL);
    af__sqlite_bind_text(st, 4, path);
    af__sqlite_bind_text(st, 5, w->methods);
    if ((rc = af__sqlite_bind_json(st, 6, w->config)) != 0) {
        return af_error_set(err, rc, "out of memory");
    }
    sqlite3_bind_int64(st, 7, af__sqlite_now(c));
    int row = 0;
    if ((rc = af__sqlite_first(c, st, &row, "register webhook", err)) != 0) {
        return rc;
    }
    if (!row) {
        return path_conflict(c, path, w->workflow_id, err);
    }
    af__sqlite_col_copy(st, 0, id, sizeof id);
    if ((rc = af__sqlite_run(c, st, "register webhook", err)) == 0 && id_out) {
        memcpy(id_out, id, sizeof id);
    }
    return rc;
}

int af__sqlite_webhook_find(af_store_t *s, const char *path, af_webhook_rec_t *out,
                            af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT " WEBHOOK_COLS " FROM webhook_registrations WHERE path = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    path = bare_path(path);
    af__sqlite_bind_text(st, 1, path);
    rc = af__sqlite_one(c, st, row_webhook, out, "find webhook", err);
    return rc == AF_ENOTFOUND ? af_error_set(err, rc, "no webhook registered at '%s'", path) : rc;
}

/* Webhook cursors continue after the last path of the previous page. "p:<path>" carries the
 * path itself. A path too long for a cursor is "i:<k>:<first k bytes of the path><id>": the page
 * continues after the path of registration <id>, or, if that one was deleted meanwhile, after the
 * prefix (which may repeat a few rows, never skip one). */
#define WEBHOOK_PREFIX_MAX 48

static void webhook_cursor(const af_webhook_rec_t *w, char *out) {
    size_t len = strlen(w->path);
    if (len + 3 <= AF_STORE_CURSOR_MAX) {
        snprintf(out, AF_STORE_CURSOR_MAX, "p:%s", w->path);
    } else {
        snprintf(out, AF_STORE_CURSOR_MAX, "i:%d:%.*s%s", WEBHOOK_PREFIX_MAX, WEBHOOK_PREFIX_MAX,
                 w->path, w->id);
    }
}

/* Splits a cursor into the path to continue after (prefix, not NUL-terminated: *plen bytes) and
 * the id to look up (NULL for "p:"). */
static int webhook_uncursor(const char *cursor, const char **prefix, size_t *plen, const char **id,
                            af_error_t *err) {
    *id = NULL;
    if (strncmp(cursor, "p:", 2) == 0 && cursor[2] != '\0') {
        *prefix = cursor + 2;
        *plen = strlen(*prefix);
        return 0;
    }
    if (strncmp(cursor, "i:", 2) == 0) {
        char *end;
        long k = strtol(cursor + 2, &end, 10);
        if (end != cursor + 2 && *end == ':' && k > 0 && (size_t)k < strlen(end + 1)) {
            *prefix = end + 1;
            *plen = (size_t)k;
            *id = end + 1 + k;
            return 0;
        }
    }
    return af_error_set(err, AF_EINVAL, "malformed cursor");
}

int af__sqlite_webhook_list(af_store_t *s, const char *cursor, int limit, af_webhook_rec_t **out,
                            size_t *n, char *next_cursor, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "SELECT " WEBHOOK_COLS " FROM webhook_registrations"
        " WHERE path > COALESCE((SELECT path FROM webhook_registrations WHERE id = ?3), ?1)"
        " ORDER BY path LIMIT ?2";
    const char *prefix = "", *id = NULL;
    size_t plen = 0;
    if (limit <= 0) {
        limit = 50;
    }
    if (cursor && cursor[0] && webhook_uncursor(cursor, &prefix, &plen, &id, err) != 0) {
        return AF_EINVAL;
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_text(st, 1, prefix, (int)plen, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (int64_t)limit + 1);
    af__sqlite_bind_text(st, 3, id);
    next_cursor[0] = '\0'; /* the cursor is bound (copied): they may be one buffer */
    af_webhook_rec_t *arr;
    size_t got;
    rc = af__sqlite_rows(c, st, sizeof *arr, row_webhook, "list webhooks", (void **)&arr, &got,
                         NULL, err);
    if (rc != 0) {
        af_webhook_recs_free(arr, got);
        return rc;
    }
    if (got > (size_t)limit) { /* one more than asked: there is a next page */
        af_webhook_rec_clear(&arr[limit]);
        got = (size_t)limit;
        webhook_cursor(&arr[got - 1], next_cursor);
    }
    *out = arr;
    *n = got;
    return 0;
}

/* ---- seen webhook message ids --------------------------------------------------------------- */

/* The insert is one statement, so it joins the caller's transaction without a savepoint of its
 * own; only a duplicate costs a second (read) statement. */
int af__sqlite_webhook_seen(af_store_t *s, const char *scope, const char *msg_id,
                            const char *execution_id, int *duplicate, char *first_execution_id,
                            af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char INS[] =
        "INSERT INTO webhook_seen (scope, msg_id, execution_id, seen_at) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (scope, msg_id) DO NOTHING";
    static const char GET[] =
        "SELECT execution_id FROM webhook_seen WHERE scope = ?1 AND msg_id = ?2";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, INS, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, scope);
    af__sqlite_bind_text(st, 2, msg_id);
    af__sqlite_bind_text(st, 3, execution_id);
    sqlite3_bind_int64(st, 4, af__sqlite_now(c));
    if ((rc = af__sqlite_run(c, st, "record webhook id", err)) != 0) {
        return rc;
    }
    if (sqlite3_changes(c->db) == 1) {
        *duplicate = 0;
        return 0;
    }
    *duplicate = 1;
    if (first_execution_id == NULL) {
        return 0;
    }
    if ((rc = af__sqlite_prep(c, GET, &st, err)) != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, scope);
    af__sqlite_bind_text(st, 2, msg_id);
    int row = 0;
    if ((rc = af__sqlite_first(c, st, &row, "read webhook id", err)) == 0 && row) {
        af__sqlite_col_copy(st, 0, first_execution_id, AF_STORE_ID_MAX);
        rc = af__sqlite_run(c, st, "read webhook id", err);
    }
    return rc;
}

int af__sqlite_webhook_seen_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed,
                                  af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "DELETE FROM webhook_seen WHERE seen_at < ?1"
                              " AND NOT (scope >= 'event:' AND scope < 'event;')";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, older_than_ms);
    rc = af__sqlite_run(c, st, "prune webhook ids", err);
    if (rc == 0 && removed) {
        *removed = sqlite3_changes(c->db);
    }
    return rc;
}
