/* sqlite_internal.h -- what the SQLite store and the SQLite queue share: one connection, its
 * nesting transactions (BEGIN IMMEDIATE, then savepoints), cached statements and small helpers. */
#ifndef AF_SQLITE_INTERNAL_H
#define AF_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include "core/core.h"
#include "queue/queue_internal.h"

/* Prepared statements are cached for the life of the connection in an open-addressing table
 * keyed by the address of their SQL text: a lookup is a hash and (almost always) one compare,
 * whatever the number of statements. At most AF__SQLITE_CACHE_MAX are kept (3/4 of the slots). */
#define AF__SQLITE_CACHE_SLOTS 256 /* a power of two */
#define AF__SQLITE_CACHE_MAX   192

typedef struct af__sqlite_s {
    sqlite3 *db;
    int depth;       /* 0: no transaction; 1: BEGIN; n > 1: savepoint sp<n> */
    int flat;        /* nested begins open no savepoint (af__sqlite_flat) */
    int flat_undone; /* a nested rollback happened while flat: its writes were not undone */
    int64_t (*clock)(void *ud);
    void *clock_ud;
    uint64_t commits; /* counted by the commit hook */
    struct {
        const char *sql; /* keyed by address: callers pass string literals; NULL = free slot */
        sqlite3_stmt *st;
    } cache[AF__SQLITE_CACHE_SLOTS];
    int ncache;
} af__sqlite_t;

int64_t af__sqlite_now(af__sqlite_t *c);
/* The row id a caller gave (given non-empty), else a new UUID, into buf (>= 37 bytes). */
const char *af__sqlite_id(const char *given, char *buf, size_t size);
/* 1 when s is a string shorter than max (fits a fixed-size field with its NUL). */
int af__sqlite_fits(const char *s, size_t max);
/* A cached prepared statement for the literal sql, reset and unbound. */
int af__sqlite_prep(af__sqlite_t *c, const char *sql, sqlite3_stmt **st, af_error_t *err);
/* Finalizes every cached statement (before sqlite3_close). */
void af__sqlite_cache_free(af__sqlite_t *c);
/* Maps a SQLite result code to AF_E* with the database's message in err. */
int af__sqlite_fail(af__sqlite_t *c, int rc, const char *what, af_error_t *err);
/* Runs sql with no results (not cached). */
int af__sqlite_exec(af__sqlite_t *c, const char *sql, af_error_t *err);
/* Steps a statement expected to finish (SQLITE_DONE), then resets it. */
int af__sqlite_run(af__sqlite_t *c, sqlite3_stmt *st, const char *what, af_error_t *err);
/* Steps once. On a row sets *row = 1 and leaves the statement on it (read the columns, then
 * af__sqlite_run to finish); otherwise sets *row = 0 and resets. Never steps twice on error. */
int af__sqlite_first(af__sqlite_t *c, sqlite3_stmt *st, int *row, const char *what,
                     af_error_t *err);

int af__sqlite_begin(af__sqlite_t *c, af_error_t *err);
/* Flat mode on/off (see af_store_vt_t.flat); returns 1 when a nested rollback was elided. */
int af__sqlite_flat(af__sqlite_t *c, int on);
int af__sqlite_commit(af__sqlite_t *c, af_error_t *err);
void af__sqlite_rollback(af__sqlite_t *c);
/* Commits when rc is 0, else rolls back; returns rc or the commit's error. */
int af__sqlite_end(af__sqlite_t *c, int rc, af_error_t *err);

/* Binds text, or NULL when s is NULL. */
int af__sqlite_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Binds JSON as compact text, or NULL when v is NULL. Returns AF_ENOMEM on failure. */
int af__sqlite_bind_json(sqlite3_stmt *st, int i, const json_t *v);
/* A new copy of a text column, or NULL for SQL NULL. *oom set on allocation failure. */
char *af__sqlite_col_dup(sqlite3_stmt *st, int i, int *oom);
/* A new JSON value from a text column, or NULL for SQL NULL or unreadable text. */
json_t *af__sqlite_col_json(sqlite3_stmt *st, int i);
/* Copies a text column into a fixed buffer (truncating). */
void af__sqlite_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size);

/* Grows *arr (of elem-sized items, new ones zeroed) to hold at least need items; AF_ENOMEM. */
/* Reads a row into a zeroed record: returns 0 (keep it), 1 (skip the row; nothing was kept) or
 * AF_ENOMEM (the record is left empty). */
typedef int (*af__sqlite_row_fn)(sqlite3_stmt *st, void *record);
/* Reads the one row st yields (a lookup by key, or an UPDATE ... RETURNING, which makes its change
 * on that step) into record with row, and resets st. Returns 0; AF_ENOTFOUND when there is no row
 * (err untouched: the caller says what is missing); AF_ENOMEM or AF_EIO naming `what`. */
int af__sqlite_one(af__sqlite_t *c, sqlite3_stmt *st, af__sqlite_row_fn row, void *record,
                   const char *what, af_error_t *err);
/* Steps st to its end, reading each row into a growing array of size-byte records with row.
 * *out (NULL when empty) and *n are set whether it succeeds or not: on failure the caller frees
 * the records read with their type's free function. *rows (may be NULL) gets the rows stepped,
 * skipped ones included. Returns 0, AF_ENOMEM, or AF_EIO naming `what`; st is reset. */
int af__sqlite_rows(af__sqlite_t *c, sqlite3_stmt *st, size_t size, af__sqlite_row_fn row,
                    const char *what, void **out, size_t *n, size_t *rows, af_error_t *err);
/* 1 when s is one of the NULL-terminated words. */
int af__sqlite_word_in(const char *s, const char *const *words);
/* Runs a cached statement whose only parameter ?1 is id (may be NULL: unbound); sets *changes
 * (may be NULL) to the rows it changed. */
int af__sqlite_exec_id(af__sqlite_t *c, const char *sql, const char *id, int *changes,
                       af_error_t *err);
/* In one transaction: sql[0] deletes the `what` row id (none: AF_ENOTFOUND, nothing done), then
 * the rest of the NULL-terminated statements delete what belongs to it. */
int af__sqlite_delete_cascade(af__sqlite_t *c, const char *what, const char *id,
                              const char *const *sql, af_error_t *err);

/* The queue over c (queue_sqlite.c): new, freed with af__queue_sqlite_free. */
af_queue_t *af__queue_sqlite_new(af__sqlite_t *c);
void af__queue_sqlite_free(af_queue_t *q);

#endif
