/* store_sqlite_events.c -- the SQLite store's trigger state (what schedules and polls remember
 * across restarts) and stored events (for replay), with their retention. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sqlite_internal.h"

#define CONN(s) AF__STORE_CONN(s)

/* ---- trigger state -------------------------------------------------------------------------- */

static int row_trigger_state(sqlite3_stmt *st, void *record) {
    af_trigger_state_t *out = record;
    out->last_fire_at = sqlite3_column_int64(st, 0);
    af__sqlite_col_copy(st, 1, out->last_execution_id, sizeof out->last_execution_id);
    out->state = af__sqlite_col_json(st, 2);
    return 0;
}

int af__sqlite_trigger_state_get(af_store_t *s, const char *trigger_id, af_trigger_state_t *out,
                                 af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT last_fire_at, last_execution_id, state"
                              " FROM trigger_state WHERE trigger_id = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, trigger_id);
    rc = af__sqlite_one(c, st, row_trigger_state, out, "read trigger state", err);
    if (rc == AF_ENOTFOUND) {
        return af_error_set(err, rc, "no state for trigger %s", trigger_id);
    }
    return rc;
}

/* One statement, written only while the trigger exists. */
int af__sqlite_trigger_state_put(af_store_t *s, const char *trigger_id,
                                 const af_trigger_state_t *ts, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "INSERT INTO trigger_state (trigger_id, last_fire_at, last_execution_id, state, updated_at)"
        " SELECT id, ?2, ?3, ?4, ?5 FROM triggers WHERE id = ?1"
        " ON CONFLICT (trigger_id) DO UPDATE SET last_fire_at = excluded.last_fire_at,"
        " last_execution_id = excluded.last_execution_id, state = excluded.state,"
        " updated_at = excluded.updated_at";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, trigger_id);
    sqlite3_bind_int64(st, 2, ts->last_fire_at);
    af__sqlite_bind_text(st, 3, ts->last_execution_id[0] ? ts->last_execution_id : NULL);
    if (af__sqlite_bind_json(st, 4, ts->state) != 0) {
        sqlite3_reset(st);
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    sqlite3_bind_int64(st, 5, af__sqlite_now(c));
    if ((rc = af__sqlite_run(c, st, "write trigger state", err)) == 0 &&
        sqlite3_changes(c->db) == 0) {
        rc = af_error_set(err, AF_ENOTFOUND, "no trigger %s", trigger_id);
    }
    return rc;
}

/* ---- events --------------------------------------------------------------------------------- */

int af__sqlite_event_put(af_store_t *s, const af_event_rec_t *e, int *duplicate, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "INSERT INTO events (id, type, data, meta, created_at)"
                              " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, e->id);
    af__sqlite_bind_text(st, 2, e->type);
    if (af__sqlite_bind_json(st, 3, e->data) != 0 || af__sqlite_bind_json(st, 4, e->meta) != 0) {
        sqlite3_reset(st);
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    sqlite3_bind_int64(st, 5, e->created_at > 0 ? e->created_at : af__sqlite_now(c));
    if ((rc = af__sqlite_run(c, st, "store event", err)) == 0) {
        *duplicate = sqlite3_changes(c->db) == 0;
    }
    return rc;
}

static int row_event(sqlite3_stmt *st, void *record) {
    af_event_rec_t *e = record;
    memset(e, 0, sizeof *e);
    af__sqlite_col_copy(st, 0, e->id, sizeof e->id);
    af__sqlite_col_copy(st, 1, e->type, sizeof e->type);
    e->data = af__sqlite_col_json(st, 2);
    e->meta = af__sqlite_col_json(st, 3);
    e->created_at = sqlite3_column_int64(st, 4);
    return 0;
}

int af__sqlite_event_list(af_store_t *s, int64_t from_ms, int64_t to_ms, const char *cursor,
                          int limit, af_event_rec_t **out, size_t *n, char *next_cursor,
                          af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT id, type, data, meta, created_at FROM events"
                              " WHERE (created_at, id) > (?1, ?2) AND created_at <= ?3"
                              " ORDER BY created_at, id LIMIT ?4";
    int64_t at = from_ms; /* (from_ms, "") sorts before every event of from_ms: ids are not empty */
    char cid[AF_STORE_ID_MAX] = "";
    if (cursor && cursor[0] && af__sqlite_parse_cursor(cursor, &at, cid, sizeof cid, err) != 0) {
        return AF_EINVAL;
    }
    next_cursor[0] = '\0'; /* after reading cursor: they may be one buffer */
    if (at < from_ms) {
        at = from_ms;
        cid[0] = '\0';
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, at);
    af__sqlite_bind_text(st, 2, cid);
    sqlite3_bind_int64(st, 3, to_ms);
    sqlite3_bind_int(st, 4, limit);
    rc = af__sqlite_rows(c, st, sizeof **out, row_event, "list events", (void **)out, n, NULL, err);
    if (rc != 0) {
        af_event_recs_free(*out, *n);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n == (size_t)limit) {
        snprintf(next_cursor, AF_STORE_CURSOR_MAX, "%lld:%s", (long long)(*out)[*n - 1].created_at,
                 (*out)[*n - 1].id);
    }
    return 0;
}

int af__sqlite_event_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed,
                           af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char *const SQL[] = {
        "DELETE FROM events WHERE created_at < ?1",
        "DELETE FROM webhook_seen WHERE scope >= 'event:' AND scope < 'event;' AND seen_at < ?1",
        "DELETE FROM trigger_state WHERE trigger_id NOT IN (SELECT id FROM triggers)",
    };
    int rc = af__sqlite_begin(c, err);
    int64_t gone = 0;
    for (size_t i = 0; rc == 0 && i < sizeof SQL / sizeof SQL[0]; i++) {
        sqlite3_stmt *st;
        if ((rc = af__sqlite_prep(c, SQL[i], &st, err)) == 0) {
            if (i < 2) {
                sqlite3_bind_int64(st, 1, older_than_ms);
            }
            rc = af__sqlite_run(c, st, "prune events", err);
            gone = i == 0 ? sqlite3_changes(c->db) : gone;
        }
    }
    if ((rc = af__sqlite_end(c, rc, err)) == 0 && removed) {
        *removed = gone;
    }
    return rc;
}
