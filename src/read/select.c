/*
 * imgpack_reader_select: the record indices of a subset, chosen by the
 * user's own SQL WHERE clause run against the store's catalog.
 *
 * The clause is the user's text, so it is kept to what it claims to be:
 * one boolean expression inside
 *
 *     SELECT images.idx FROM images JOIN classes USING (class_id)
 *     WHERE (<clause>) ORDER BY images.idx
 *
 * run read-only. Four layers, each enough for a different attack:
 *  1. scan_clause: the clause's parentheses balance and never close ours,
 *     literals and comments end, and no ';' ends a statement, so it cannot
 *     turn the query into another (a UNION, a second statement);
 *  2. sqlite3_prepare_v2 compiles one statement; any tail is refused;
 *  3. an authorizer allows reading, SELECT and functions only (not
 *     load_extension or fts3_tokenizer) and names what it refused;
 *     sqlite3_stmt_readonly() must agree;
 *  4. the catalog is opened SQLITE_OPEN_READONLY with PRAGMA query_only,
 *     so nothing could write it even if all of the above failed.
 *
 * The LMDB store is authoritative for what was packed (the catalog may hold
 * rows past the count after a crash: docs/FORMAT.md), so only indices below
 * imgpack_reader_count() are returned, which also bounds the output.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "reader_internal.h"

/* Bytes of WHERE clause accepted: far more than any hand-written filter,
   well below SQLite's statement limit. */
#define SELECT_MAX_CLAUSE (64u << 10)

/* The query around the clause. The newline ends a trailing "--" comment
   inside the clause before our parenthesis. */
static const char select_head[] =
    "SELECT images.idx FROM images JOIN classes USING (class_id) WHERE (";
static const char select_tail[] = "\n) ORDER BY images.idx";

/* Functions a query may not call though SQLite offers them: they load
   code or hand out pointers. */
static const char *const denied_functions[] = {"load_extension",
                                               "fts3_tokenizer"};

typedef struct select_job {
    imgpack_reader *r;
    const char *catalog;
    char refused[256]; /* what the authorizer denied first, "" if nothing */
} select_job;

static imgpack_status fail(select_job *job, imgpack_status code,
                           const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Makes "<catalog>: select: <reason>" the calling thread's error on the
   reader; returns `code`. */
static imgpack_status fail(select_job *job, imgpack_status code,
                           const char *format, ...) {
    char message[IMGPACK__ERRMSG_SIZE];
    va_list args;
    int n = snprintf(message, sizeof message, "%s: select: ", job->catalog);
    if (n < 0 || (size_t)n >= sizeof message)
        n = 0;
    va_start(args, format);
    vsnprintf(message + n, sizeof message - (size_t)n, format, args);
    va_end(args);
    return imgpack__reader_fail(job->r, code, message);
}

/*
 * Checks that `clause` is one expression that stays inside our
 * parentheses. Returns NULL if so, else the reason. Follows SQLite's
 * tokenizer for what hides parentheses: '...' literals (also X'..'),
 * "..", `..` and [..] identifiers, -- and block comments.
 */
static const char *scan_clause(const char *clause) {
    long depth = 0;
    for (const char *p = clause; *p; p++) {
        char close = 0;
        switch (*p) {
        case '\'':
        case '"':
        case '`':
            close = *p;
            break;
        case '[':
            close = ']';
            break;
        case '(':
            depth++;
            continue;
        case ')':
            if (--depth < 0)
                return "')' closes more than the clause opened: a WHERE "
                       "clause is one expression";
            continue;
        case ';':
            return "';' ends the statement: select runs exactly one SELECT";
        case '-':
            if (p[1] == '-')
                while (p[1] && p[1] != '\n')
                    p++;
            continue;
        case '/':
            if (p[1] == '*') {
                const char *end = strstr(p + 2, "*/");
                if (!end)
                    return "a /* comment does not end";
                p = end + 1;
            }
            continue;
        default:
            continue;
        }
        /* A quoted literal or identifier; a doubled quote stays inside. */
        for (p++;; p++) {
            if (!*p)
                return "a quoted string or name does not end";
            if (*p == close) {
                if (close != ']' && p[1] == close)
                    p++;
                else
                    break;
            }
        }
    }
    return depth == 0 ? NULL : "'(' is not closed";
}

static const char *action_name(int action) {
    switch (action) {
    case SQLITE_ATTACH:
        return "ATTACH";
    case SQLITE_DETACH:
        return "DETACH";
    case SQLITE_PRAGMA:
        return "PRAGMA";
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
        return "writing";
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        return "a transaction";
    default:
        return "a statement other than SELECT";
    }
}

/* Lets a statement read and compute, nothing else; records the first
   refusal for the message. */
static int authorize(void *data, int action, const char *arg1, const char *arg2,
                     const char *database, const char *trigger) {
    select_job *job = data;
    const char *what = NULL;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_UPDATE:
        /* SQLite reports this when it first sets up a table-valued
           function (json_each, pragma_*) on a connection; nothing is
           written, and the connection could not write anyway. */
        if (arg1 && strcmp(arg1, "sqlite_master") == 0)
            return SQLITE_OK;
        what = action_name(action);
        break;
    case SQLITE_FUNCTION:
        for (size_t i = 0;
             i < sizeof denied_functions / sizeof *denied_functions; i++)
            if (arg2 && strcmp(arg2, denied_functions[i]) == 0)
                what = arg2;
        if (!what)
            return SQLITE_OK;
        break;
    default:
        what = action_name(action);
    }
    if (!job->refused[0])
        snprintf(job->refused, sizeof job->refused,
                 "%s is not allowed: the query may only read the catalog",
                 what);
    return SQLITE_DENY;
}

/* The error of a failed prepare or step: what the authorizer refused
   (some checks, such as a pragma function's, run only when it steps),
   else SQLite's message. */
static imgpack_status refused_or_failed(select_job *job, sqlite3 *db) {
    if (job->refused[0])
        return fail(job, IMGPACK_ERR_INVALID_ARG, "%s", job->refused);
    return fail(job, IMGPACK_ERR_CATALOG, "%s", sqlite3_errmsg(db));
}

/*
 * Binds value i (1-based) as a number when it is written exactly as printf
 * writes one ("%lld"; "%.15g" or "%.17g" for a real), else as text: so
 * `src_width * 2 >= ?` compares numbers, while "007", "1e3", "nan" or
 * " 5" (class names, perhaps) stay text. A column compared with the value
 * applies its own affinity either way.
 */
static int bind_value(sqlite3_stmt *stmt, int i, const char *value) {
    char canonical[64], *end;
    errno = 0;
    long long whole = strtoll(value, &end, 10);
    if (*end == '\0' && errno == 0) {
        snprintf(canonical, sizeof canonical, "%lld", whole);
        if (strcmp(canonical, value) == 0)
            return sqlite3_bind_int64(stmt, i, whole);
    }
    double real = strtod(value, &end);
    /* Not NaN or infinity: SQLite would store NaN as NULL. */
    if (*end == '\0' && end != value && isfinite(real)) {
        for (int digits = 15; digits <= 17; digits += 2) {
            snprintf(canonical, sizeof canonical, "%.*g", digits, real);
            if (strcmp(canonical, value) == 0)
                return sqlite3_bind_double(stmt, i, real);
        }
    }
    return sqlite3_bind_text(stmt, i, value, -1, SQLITE_TRANSIENT);
}

static imgpack_status run_query(select_job *job, sqlite3 *db, const char *query,
                                const char *const *params, uint32_t n_params,
                                uint64_t *out, uint64_t capacity,
                                uint64_t *count) {
    imgpack_status status = IMGPACK_OK;
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    uint64_t records = imgpack_reader_count(job->r);
    char detail[512];
    int rc;

    sqlite3_set_authorizer(db, authorize, job);
    rc = sqlite3_prepare_v2(db, query, -1, &stmt, &tail);
    if (rc != SQLITE_OK || !stmt) {
        status = refused_or_failed(job, db);
        goto done;
    }
    /* scan_clause keeps ';' out; should SQLite's tokenizer ever see a
       second statement all the same, it is refused here. */
    if (tail && tail[strspn(tail, " \t\r\n")] != '\0') {
        status = fail(job, IMGPACK_ERR_INVALID_ARG,
                      "text follows the statement ('%s'): select runs exactly "
                      "one SELECT",
                      tail);
        goto done;
    }
    if (!sqlite3_stmt_readonly(stmt)) {
        status = fail(job, IMGPACK_ERR_INVALID_ARG, "%s",
                      "the query would write: it may only read the catalog");
        goto done;
    }
    if ((uint32_t)sqlite3_bind_parameter_count(stmt) != n_params) {
        snprintf(detail, sizeof detail,
                 "the WHERE clause has %d parameter(s) but %" PRIu32
                 " value(s) were given",
                 sqlite3_bind_parameter_count(stmt), n_params);
        status = fail(job, IMGPACK_ERR_INVALID_ARG, "%s", detail);
        goto done;
    }
    for (uint32_t i = 0; i < n_params; i++)
        if (!params[i] ||
            bind_value(stmt, (int)i + 1, params[i]) != SQLITE_OK) {
            status = fail(job, IMGPACK_ERR_INVALID_ARG, "%s",
                          "a parameter value is missing or cannot be bound");
            goto done;
        }
    *count = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        sqlite3_int64 idx = sqlite3_column_int64(stmt, 0);
        /* Ordered by idx: the first one past the count ends the subset. */
        if (idx < 0)
            continue;
        if ((uint64_t)idx >= records)
            break;
        if (*count >= capacity) {
            status = fail(job, IMGPACK_ERR_INVALID_ARG, "%s",
                          "more indices than the capacity given: pass at "
                          "least imgpack_reader_count()");
            goto done;
        }
        out[(*count)++] = (uint64_t)idx;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        status = refused_or_failed(job, db);
done:
    sqlite3_finalize(stmt);
    return status;
}

imgpack_status imgpack_reader_select(imgpack_reader *r, const char *where,
                                     const char *const *params,
                                     uint32_t n_params, uint64_t *out,
                                     uint64_t capacity, uint64_t *count) {
    select_job job = {.r = r};
    imgpack_status status = IMGPACK_OK;
    imgpack__read_slot *slot = NULL;
    sqlite3 *db = NULL;
    char catalog[4096], *query = NULL;
    const char *problem;
    size_t length;

    if (!r || !where || !count || (n_params && !params) || (capacity && !out))
        return r ? imgpack__reader_fail(r, IMGPACK_ERR_INVALID_ARG,
                                        "select: NULL argument")
                 : IMGPACK_ERR_INVALID_ARG;
    *count = 0;
    /* Beginning a read clears the thread's last error (and reopens the
       store after a fork); the query itself needs no read transaction. */
    if ((status = imgpack__reader_begin(r, &slot)) != IMGPACK_OK)
        return status;
    imgpack__reader_end(r, slot);
    snprintf(catalog, sizeof catalog, "%s/catalog.db", imgpack_reader_path(r));
    job.catalog = catalog;
    length = strlen(where);
    if (length > SELECT_MAX_CLAUSE)
        return fail(&job, IMGPACK_ERR_INVALID_ARG, "%s",
                    "the WHERE clause is longer than 64 KiB");
    if ((problem = scan_clause(where)) != NULL)
        return fail(&job, IMGPACK_ERR_INVALID_ARG, "%s", problem);
    if (!(query = malloc(sizeof select_head + length + sizeof select_tail)))
        return fail(&job, IMGPACK_ERR_NOMEM, "%s", "out of memory");
    sprintf(query, "%s%s%s", select_head, where, select_tail);

    if (sqlite3_open_v2(catalog, &db, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        status = fail(&job, IMGPACK_ERR_CATALOG, "%s%s",
                      db ? sqlite3_errmsg(db) : "out of memory",
                      imgpack_reader_num_shards(r) > 1
                          ? " (a sharded pack's catalog is written by "
                            "'imgpack combine')"
                          : "");
        goto done;
    }
    if (sqlite3_exec(db, "PRAGMA query_only = 1", NULL, NULL, NULL) !=
        SQLITE_OK) {
        status = fail(&job, IMGPACK_ERR_CATALOG, "%s", sqlite3_errmsg(db));
        goto done;
    }
    status = run_query(&job, db, query, params, n_params, out, capacity, count);
done:
    if (status != IMGPACK_OK)
        *count = 0;
    sqlite3_close(db);
    free(query);
    return status;
}
