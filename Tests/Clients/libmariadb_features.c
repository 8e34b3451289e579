/*
 * libmariadb_features.c - exercises MariaDB Connector/C features that a
 * MySQL-protocol proxy has to carry faithfully: TLS, the binary protocol,
 * long data, cursors, bulk execution, multi-results, LOCAL INFILE,
 * COM_CHANGE_USER, COM_RESET_CONNECTION, packets above 16 MiB, KILL, and
 * the small administrative commands.
 *
 * Build:  cc -O2 -Wall -o libmariadb_features libmariadb_features.c \
 *             $(pkg-config --cflags --libs libmariadb)
 * Run:    SY_HOST=127.0.0.1 SY_PORT=3306 SY_USER=app SY_PASSWORD=... \
 *         SY_DB=appdb SY_CA=/path/ca.pem ./libmariadb_features [check]
 *
 * Optional: SY_COMPRESS=1 (compressed protocol), SY_OTHER_USER and
 * SY_OTHER_PASSWORD (target of the change_user and change_user_denied
 * checks; an ed25519 account needs libmariadb's client_ed25519 plugin).
 *
 * Every check prints "ok <name>" or "FAIL <name>: <reason>"; the exit code
 * is 1 when any check failed, 2 on a usage error.
 */

#include <mysql.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Configuration                                                          */
/* ---------------------------------------------------------------------- */

static struct {
    const char *host;
    unsigned int port;
    const char *user;
    const char *password;
    const char *db;
    const char *ca;
    int compress;
    const char *other_user;
    const char *other_password;
} cfg;

static const char *env_or(const char *name, const char *fallback)
{
    const char *value = getenv(name);
    return (value && *value) ? value : fallback;
}

static int load_config(void)
{
    cfg.host = env_or("SY_HOST", "127.0.0.1");
    cfg.port = (unsigned int)atoi(env_or("SY_PORT", "3306"));
    cfg.user = env_or("SY_USER", NULL);
    cfg.password = env_or("SY_PASSWORD", "");
    cfg.db = env_or("SY_DB", NULL);
    cfg.ca = env_or("SY_CA", NULL);
    cfg.compress = strcmp(env_or("SY_COMPRESS", "0"), "1") == 0;
    cfg.other_user = env_or("SY_OTHER_USER", cfg.user);
    cfg.other_password = env_or("SY_OTHER_PASSWORD",
                                getenv("SY_OTHER_USER") ? "" : cfg.password);
    if (!cfg.user || !cfg.db || !cfg.ca) {
        fprintf(stderr, "SY_USER, SY_DB and SY_CA must be set\n");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Failure reporting                                                      */
/* ---------------------------------------------------------------------- */

static char reason[2048];

/* Records why the running check failed; returns -1 so checks can
 * `return failf(...)`. */
static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_conn(MYSQL *conn, const char *what)
{
    return failf("%s: %s (errno %u)", what, mysql_error(conn), mysql_errno(conn));
}

static int fail_stmt(MYSQL_STMT *stmt, const char *what)
{
    return failf("%s: %s (errno %u)", what, mysql_stmt_error(stmt),
                 mysql_stmt_errno(stmt));
}

/* ---------------------------------------------------------------------- */
/* Connections and small query helpers                                    */
/* ---------------------------------------------------------------------- */

#define CONNECT_MULTI_STATEMENTS 0x1
#define CONNECT_LOCAL_INFILE     0x2

static MYSQL *open_conn(int flags)
{
    MYSQL *conn = mysql_init(NULL);
    if (!conn) {
        failf("mysql_init failed");
        return NULL;
    }
    my_bool verify = 1;
    unsigned int protocol = MYSQL_PROTOCOL_TCP;
    unsigned int connect_timeout = 10;
    unsigned int io_timeout = 120;
    unsigned long max_packet = 1024UL * 1024 * 1024;
    unsigned int local_infile = (flags & CONNECT_LOCAL_INFILE) ? 1 : 0;

    mysql_optionsv(conn, MYSQL_OPT_PROTOCOL, &protocol);
    mysql_optionsv(conn, MYSQL_OPT_SSL_CA, cfg.ca);
    mysql_optionsv(conn, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    mysql_optionsv(conn, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_optionsv(conn, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_optionsv(conn, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    mysql_optionsv(conn, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
    mysql_optionsv(conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(conn, MYSQL_OPT_LOCAL_INFILE, &local_infile);
    if (cfg.compress)
        mysql_optionsv(conn, MYSQL_OPT_COMPRESS, NULL);

    unsigned long client_flags = CLIENT_MULTI_RESULTS;
    if (flags & CONNECT_MULTI_STATEMENTS)
        client_flags |= CLIENT_MULTI_STATEMENTS;

    if (!mysql_real_connect(conn, cfg.host, cfg.user, cfg.password, cfg.db,
                            cfg.port, NULL, client_flags)) {
        fail_conn(conn, "connect");
        mysql_close(conn);
        return NULL;
    }
    return conn;
}

/* Runs a statement that must succeed and discards any result. */
static int exec(MYSQL *conn, const char *sql)
{
    if (mysql_query(conn, sql))
        return failf("%s: %s (errno %u)", sql, mysql_error(conn), mysql_errno(conn));
    MYSQL_RES *res = mysql_store_result(conn);
    if (res)
        mysql_free_result(res);
    else if (mysql_field_count(conn) != 0)
        return fail_conn(conn, sql);
    return 0;
}

static int execf(MYSQL *conn, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return exec(conn, sql);
}

/* Runs a one-row, one-column query and copies the value (or "NULL") into
 * out. */
static int query_text(MYSQL *conn, const char *sql, char *out, size_t out_len)
{
    if (mysql_query(conn, sql))
        return failf("%s: %s (errno %u)", sql, mysql_error(conn), mysql_errno(conn));
    MYSQL_RES *res = mysql_store_result(conn);
    if (!res)
        return fail_conn(conn, sql);
    MYSQL_ROW row = mysql_fetch_row(res);
    if (!row) {
        mysql_free_result(res);
        return failf("%s: no row", sql);
    }
    snprintf(out, out_len, "%s", row[0] ? row[0] : "NULL");
    mysql_free_result(res);
    return 0;
}

static int query_int(MYSQL *conn, const char *sql, long long *out)
{
    char text[64];
    if (query_text(conn, sql, text, sizeof text))
        return -1;
    char *end;
    *out = strtoll(text, &end, 10);
    if (*end != '\0')
        return failf("%s: expected an integer, got '%s'", sql, text);
    return 0;
}

static int expect_int(MYSQL *conn, const char *sql, long long want)
{
    long long got;
    if (query_int(conn, sql, &got))
        return -1;
    if (got != want)
        return failf("%s: expected %lld, got %lld", sql, want, got);
    return 0;
}

static int expect_text(MYSQL *conn, const char *sql, const char *want)
{
    char got[512];
    if (query_text(conn, sql, got, sizeof got))
        return -1;
    if (strcmp(got, want) != 0)
        return failf("%s: expected '%s', got '%s'", sql, want, got);
    return 0;
}

static unsigned int server_status(MYSQL *conn)
{
    unsigned int status = 0;
    mariadb_get_infov(conn, MARIADB_CONNECTION_SERVER_STATUS, &status);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Test data helpers                                                      */
/* ---------------------------------------------------------------------- */

/* Objects created by checks ("TABLE x", "PROCEDURE y"); all are dropped
 * once every check has run, whether the check passed or not. */
static struct {
    const char *kind;
    char name[64];
} created[32];
static int created_count;

/* Builds a per-process object name and remembers it for cleanup. */
static const char *new_object(const char *kind, const char *check)
{
    created[created_count].kind = kind;
    char *name = created[created_count++].name;
    snprintf(name, sizeof created[0].name, "sy_c_%s_%d", check, (int)getpid());
    return name;
}

static const char *table_name(const char *check)
{
    return new_object("TABLE", check);
}

/* IEEE CRC-32, the same function as the server's CRC32(). */
static uint32_t crc32_of(const unsigned char *data, size_t len)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* Deterministic bytes covering all 256 values, seeded so that separate
 * buffers differ. */
static unsigned char *pattern(size_t len, uint32_t seed)
{
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    return buf;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Checks the server-side length and CRC32 of one column of one row. */
static int expect_blob_digest(MYSQL *conn, const char *table, const char *column,
                              int id, const unsigned char *data, size_t len)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT CONCAT(LENGTH(%s), ':', CRC32(%s)) FROM %s WHERE id = %d",
             column, column, table, id);
    char want[64];
    snprintf(want, sizeof want, "%zu:%u", len, crc32_of(data, len));
    return expect_text(conn, sql, want);
}

/* Reads one blob column back through the binary protocol and compares it
 * byte for byte with the expected data. */
static int read_back_blob(MYSQL *conn, const char *table, int id,
                          const unsigned char *want, size_t want_len)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT b FROM %s WHERE id = ?", table);
    MYSQL_STMT *stmt = mysql_stmt_init(conn);
    unsigned char *got = malloc(want_len + 1);
    int rc = -1;
    if (!stmt || !got) {
        failf("out of memory");
        goto out;
    }
    if (mysql_stmt_prepare(stmt, sql, strlen(sql))) {
        fail_stmt(stmt, "prepare read-back");
        goto out;
    }
    MYSQL_BIND param = { 0 };
    param.buffer_type = MYSQL_TYPE_LONG;
    param.buffer = &id;
    unsigned long got_len = 0;
    my_bool is_null = 0;
    MYSQL_BIND result = { 0 };
    result.buffer_type = MYSQL_TYPE_LONG_BLOB;
    result.buffer = got;
    result.buffer_length = want_len + 1;
    result.length = &got_len;
    result.is_null = &is_null;
    if (mysql_stmt_bind_param(stmt, &param) || mysql_stmt_execute(stmt) ||
        mysql_stmt_bind_result(stmt, &result) || mysql_stmt_store_result(stmt)) {
        fail_stmt(stmt, "execute read-back");
        goto out;
    }
    int fetched = mysql_stmt_fetch(stmt);
    if (fetched != 0 && fetched != MYSQL_DATA_TRUNCATED) {
        fail_stmt(stmt, "fetch read-back");
        goto out;
    }
    if (is_null || got_len != want_len) {
        failf("read back %lu bytes (null=%d), expected %zu", got_len, is_null, want_len);
        goto out;
    }
    if (memcmp(got, want, want_len) != 0) {
        failf("read-back bytes differ from the inserted ones");
        goto out;
    }
    rc = 0;
out:
    if (stmt)
        mysql_stmt_close(stmt);
    free(got);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Checks                                                                 */
/* ---------------------------------------------------------------------- */

static int check_tls(MYSQL *conn)
{
    if (!mysql_get_ssl_cipher(conn))
        return failf("mysql_get_ssl_cipher() is NULL: the client did not negotiate TLS");
    if (mysql_query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'"))
        return fail_conn(conn, "SHOW SESSION STATUS");
    MYSQL_RES *res = mysql_store_result(conn);
    if (!res)
        return fail_conn(conn, "store Ssl_cipher");
    MYSQL_ROW row = mysql_fetch_row(res);
    int empty = !row || !row[1] || !*row[1];
    char cipher[128];
    snprintf(cipher, sizeof cipher, "%s", empty ? "" : row[1]);
    mysql_free_result(res);
    /* Through a proxy the server's cipher is the one of the proxy's own hop, which may differ. */
    if (empty)
        return failf("server reports an empty Ssl_cipher for this session");
    return 0;
}

/* The server's view of compression matches what SY_COMPRESS asked for. */
static int check_compression(MYSQL *conn)
{
    /* The client's own hop: did libmariadb negotiate compression? */
    if ((conn->net.compress != 0) != (cfg.compress != 0))
        return failf("the connection's compression is %d, expected %d", conn->net.compress, cfg.compress);
    /* Through the proxy too: it shows the client hop's setting in this row (its server hop is never
     * compressed). */
    if (mysql_query(conn, "SHOW SESSION STATUS LIKE 'Compression'"))
        return fail_conn(conn, "SHOW SESSION STATUS");
    MYSQL_RES *res = mysql_store_result(conn);
    if (!res)
        return fail_conn(conn, "store Compression");
    MYSQL_ROW row = mysql_fetch_row(res);
    char value[16];
    snprintf(value, sizeof value, "%s", row && row[1] ? row[1] : "");
    mysql_free_result(res);
    const char *want = cfg.compress ? "ON" : "OFF";
    if (strcmp(value, want) != 0)
        return failf("server reports Compression=%s, expected %s (SY_COMPRESS=%d)",
                     value, want, cfg.compress);
    return 0;
}

/* One row of the typed table, as bound for insert and for fetch. */
struct typed_row {
    int id;
    int i;
    long long bi;
    double d;
    char s[101];
    unsigned long s_len;
    unsigned char b[64];
    unsigned long b_len;
    MYSQL_TIME dt;
    my_bool null[7];
};

/* Binds the six value columns (i, bi, d, s, b, dt) of a typed_row. */
static void bind_typed_values(MYSQL_BIND *bind, struct typed_row *row)
{
    bind[0].buffer_type = MYSQL_TYPE_LONG;
    bind[0].buffer = &row->i;
    bind[1].buffer_type = MYSQL_TYPE_LONGLONG;
    bind[1].buffer = &row->bi;
    bind[2].buffer_type = MYSQL_TYPE_DOUBLE;
    bind[2].buffer = &row->d;
    bind[3].buffer_type = MYSQL_TYPE_STRING;
    bind[3].buffer = row->s;
    bind[3].buffer_length = sizeof row->s;
    bind[3].length = &row->s_len;
    bind[4].buffer_type = MYSQL_TYPE_BLOB;
    bind[4].buffer = row->b;
    bind[4].buffer_length = sizeof row->b;
    bind[4].length = &row->b_len;
    bind[5].buffer_type = MYSQL_TYPE_DATETIME;
    bind[5].buffer = &row->dt;
    for (int k = 0; k < 6; k++)
        bind[k].is_null = &row->null[k];
}

static int compare_typed(const struct typed_row *want, const struct typed_row *got)
{
    static const char *columns[] = { "i", "bi", "d", "s", "b", "dt" };
    for (int k = 0; k < 6; k++)
        if (want->null[k] != got->null[k])
            return failf("row %d column %s: NULL flag %d, expected %d",
                         want->id, columns[k], got->null[k], want->null[k]);
    if (want->null[0])
        return 0; /* the all-NULL row has nothing more to compare */
    if (got->i != want->i)
        return failf("row %d: int %d, expected %d", want->id, got->i, want->i);
    if (got->bi != want->bi)
        return failf("row %d: bigint %lld, expected %lld", want->id, got->bi, want->bi);
    if (got->d != want->d)
        return failf("row %d: double %.17g, expected %.17g", want->id, got->d, want->d);
    if (got->s_len != want->s_len || memcmp(got->s, want->s, want->s_len) != 0)
        return failf("row %d: varchar '%.*s', expected '%.*s'", want->id,
                     (int)got->s_len, got->s, (int)want->s_len, want->s);
    if (got->b_len != want->b_len || memcmp(got->b, want->b, want->b_len) != 0)
        return failf("row %d: blob of %lu bytes differs (expected %lu bytes)",
                     want->id, got->b_len, want->b_len);
    const MYSQL_TIME *a = &got->dt, *e = &want->dt;
    if (a->year != e->year || a->month != e->month || a->day != e->day ||
        a->hour != e->hour || a->minute != e->minute || a->second != e->second ||
        a->second_part != e->second_part)
        return failf("row %d: datetime %04u-%02u-%02u %02u:%02u:%02u.%06lu differs",
                     want->id, a->year, a->month, a->day, a->hour, a->minute,
                     a->second, a->second_part);
    return 0;
}

static int check_prepared(MYSQL *conn)
{
    const char *t = table_name("prep");
    if (execf(conn, "CREATE TABLE %s (id INT PRIMARY KEY, i INT, bi BIGINT, d DOUBLE,"
                    " s VARCHAR(100), b BLOB, dt DATETIME(6))"
                    " DEFAULT CHARSET=utf8mb4", t))
        return -1;

    struct typed_row rows[3];
    memset(rows, 0, sizeof rows);
    /* A row with ordinary values, one with extreme values, one all NULL. */
    rows[0].id = 1;
    rows[0].i = 42;
    rows[0].bi = 9007199254740993LL;
    rows[0].d = 3.141592653589793;
    strcpy(rows[0].s, "plain ascii");
    rows[0].b_len = 64;
    for (unsigned k = 0; k < 64; k++)
        rows[0].b[k] = (unsigned char)(k * 4 + 1);
    rows[0].dt = (MYSQL_TIME){ .year = 2024, .month = 2, .day = 29, .hour = 23,
                               .minute = 59, .second = 58, .second_part = 123456,
                               .time_type = MYSQL_TIMESTAMP_DATETIME };
    rows[1].id = 2;
    rows[1].i = -2147483647 - 1;
    rows[1].bi = -9223372036854775807LL - 1;
    rows[1].d = -1.0e-300;
    strcpy(rows[1].s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xac"); /* café € 🐬 */
    rows[1].b_len = 3;
    memcpy(rows[1].b, "\x00\xff\x00", 3);
    rows[1].dt = (MYSQL_TIME){ .year = 1970, .month = 1, .day = 1,
                               .time_type = MYSQL_TIMESTAMP_DATETIME };
    rows[2].id = 3;
    for (int k = 0; k < 6; k++)
        rows[2].null[k] = 1;
    for (int r = 0; r < 2; r++)
        rows[r].s_len = strlen(rows[r].s);

    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, i, bi, d, s, b, dt) VALUES (?, ?, ?, ?, ?, ?, ?)", t);
    MYSQL_STMT *ins = mysql_stmt_init(conn);
    if (mysql_stmt_prepare(ins, sql, strlen(sql))) {
        fail_stmt(ins, "prepare insert");
        mysql_stmt_close(ins);
        return -1;
    }
    if (mysql_stmt_param_count(ins) != 7) {
        failf("insert has %lu parameters, expected 7", mysql_stmt_param_count(ins));
        mysql_stmt_close(ins);
        return -1;
    }
    for (int r = 0; r < 3; r++) {
        MYSQL_BIND bind[7];
        memset(bind, 0, sizeof bind);
        bind[0].buffer_type = MYSQL_TYPE_LONG;
        bind[0].buffer = &rows[r].id;
        bind_typed_values(bind + 1, &rows[r]);
        if (mysql_stmt_bind_param(ins, bind) || mysql_stmt_execute(ins)) {
            fail_stmt(ins, "execute insert");
            mysql_stmt_close(ins);
            return -1;
        }
        if (mysql_stmt_affected_rows(ins) != 1) {
            failf("insert of row %d affected %llu rows", rows[r].id,
                  (unsigned long long)mysql_stmt_affected_rows(ins));
            mysql_stmt_close(ins);
            return -1;
        }
    }
    mysql_stmt_close(ins);

    /* Read every row back through one prepared SELECT executed three times. */
    snprintf(sql, sizeof sql, "SELECT i, bi, d, s, b, dt FROM %s WHERE id = ?", t);
    MYSQL_STMT *sel = mysql_stmt_init(conn);
    int rc = 0;
    if (mysql_stmt_prepare(sel, sql, strlen(sql))) {
        rc = fail_stmt(sel, "prepare select");
        goto out;
    }
    if (mysql_stmt_field_count(sel) != 6) {
        rc = failf("select has %u columns, expected 6", mysql_stmt_field_count(sel));
        goto out;
    }
    for (int r = 0; r < 3 && rc == 0; r++) {
        struct typed_row got;
        memset(&got, 0, sizeof got);
        MYSQL_BIND param = { 0 };
        param.buffer_type = MYSQL_TYPE_LONG;
        param.buffer = &rows[r].id;
        MYSQL_BIND result[6];
        memset(result, 0, sizeof result);
        bind_typed_values(result, &got);
        if (mysql_stmt_bind_param(sel, &param) || mysql_stmt_execute(sel) ||
            mysql_stmt_bind_result(sel, result)) {
            rc = fail_stmt(sel, "execute select");
            break;
        }
        if (mysql_stmt_fetch(sel) != 0) {
            rc = fail_stmt(sel, "fetch select");
            break;
        }
        got.id = rows[r].id;
        rc = compare_typed(&rows[r], &got);
        if (rc == 0 && mysql_stmt_fetch(sel) != MYSQL_NO_DATA)
            rc = failf("row %d: more than one row returned", rows[r].id);
        mysql_stmt_free_result(sel);
        /* COM_STMT_RESET (answered with OK) between executes: the
         * statement stays usable for the next ones. */
        if (rc == 0 && r == 0 && mysql_stmt_reset(sel))
            rc = fail_stmt(sel, "reset");
    }
out:
    mysql_stmt_close(sel);
    return rc;
}

static int check_long_data(MYSQL *conn)
{
    const char *t = table_name("longdata");
    if (execf(conn, "CREATE TABLE %s (id INT PRIMARY KEY, b LONGBLOB)", t))
        return -1;

    const size_t chunk = 1024 * 1024, chunks = 3, total = chunk * chunks;
    unsigned char *data = pattern(total, 7);
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, b) VALUES (?, ?)", t);
    MYSQL_STMT *stmt = mysql_stmt_init(conn);
    int rc = -1, id = 1;
    if (mysql_stmt_prepare(stmt, sql, strlen(sql))) {
        fail_stmt(stmt, "prepare");
        goto out;
    }
    MYSQL_BIND bind[2];
    memset(bind, 0, sizeof bind);
    bind[0].buffer_type = MYSQL_TYPE_LONG;
    bind[0].buffer = &id;
    bind[1].buffer_type = MYSQL_TYPE_LONG_BLOB;
    if (mysql_stmt_bind_param(stmt, bind)) {
        fail_stmt(stmt, "bind");
        goto out;
    }
    /* COM_STMT_SEND_LONG_DATA has no response; a proxy must not wait for
     * one. */
    for (size_t k = 0; k < chunks; k++) {
        if (mysql_stmt_send_long_data(stmt, 1, (const char *)data + k * chunk, chunk)) {
            fail_stmt(stmt, "send_long_data");
            goto out;
        }
    }
    if (mysql_stmt_execute(stmt)) {
        fail_stmt(stmt, "execute");
        goto out;
    }
    if (expect_blob_digest(conn, t, "b", 1, data, total))
        goto out;
    if (read_back_blob(conn, t, 1, data, total))
        goto out;
    rc = 0;
out:
    mysql_stmt_close(stmt);
    free(data);
    return rc;
}

static int check_cursor(MYSQL *conn)
{
    const char *t = table_name("cursor");
    if (execf(conn, "CREATE TABLE %s (id INT PRIMARY KEY, label VARCHAR(20))", t) ||
        execf(conn, "INSERT INTO %s SELECT seq, CONCAT('row-', seq) FROM seq_1_to_10", t))
        return -1;

    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id, label FROM %s WHERE id >= ? ORDER BY id", t);
    MYSQL_STMT *stmt = mysql_stmt_init(conn);
    unsigned long cursor = CURSOR_TYPE_READ_ONLY, prefetch = 3;
    int rc = -1, from = 1, id = 0, fetched = 0;
    char label[21];
    unsigned long label_len = 0;
    if (mysql_stmt_attr_set(stmt, STMT_ATTR_CURSOR_TYPE, &cursor) ||
        mysql_stmt_attr_set(stmt, STMT_ATTR_PREFETCH_ROWS, &prefetch)) {
        fail_stmt(stmt, "attr_set");
        goto out;
    }
    if (mysql_stmt_prepare(stmt, sql, strlen(sql))) {
        fail_stmt(stmt, "prepare");
        goto out;
    }
    MYSQL_BIND param = { 0 };
    param.buffer_type = MYSQL_TYPE_LONG;
    param.buffer = &from;
    MYSQL_BIND result[2];
    memset(result, 0, sizeof result);
    result[0].buffer_type = MYSQL_TYPE_LONG;
    result[0].buffer = &id;
    result[1].buffer_type = MYSQL_TYPE_STRING;
    result[1].buffer = label;
    result[1].buffer_length = sizeof label;
    result[1].length = &label_len;
    if (mysql_stmt_bind_param(stmt, &param) || mysql_stmt_execute(stmt) ||
        mysql_stmt_bind_result(stmt, result)) {
        fail_stmt(stmt, "execute");
        goto out;
    }
    if (!(server_status(conn) & SERVER_STATUS_CURSOR_EXISTS)) {
        failf("SERVER_STATUS_CURSOR_EXISTS not set after execute (status 0x%x)",
              server_status(conn));
        goto out;
    }
    int status;
    while ((status = mysql_stmt_fetch(stmt)) == 0) {
        fetched++;
        char want[21];
        snprintf(want, sizeof want, "row-%d", fetched);
        if (id != fetched || label_len != strlen(want) || memcmp(label, want, label_len)) {
            failf("row %d came back as (%d, '%.*s')", fetched, id, (int)label_len, label);
            goto out;
        }
        /* With a cursor open the connection is free for other commands;
         * the following COM_STMT_FETCH must still find the cursor. */
        if (fetched == 5 && expect_int(conn, "SELECT 5", 5))
            goto out;
    }
    if (status != MYSQL_NO_DATA) {
        fail_stmt(stmt, "fetch");
        goto out;
    }
    if (fetched != 10) {
        failf("fetched %d rows through the cursor, expected 10", fetched);
        goto out;
    }
    rc = 0;
out:
    mysql_stmt_close(stmt);
    return rc;
}

static int check_bulk(MYSQL *conn)
{
    /* libmariadb only sends COM_STMT_BULK_EXECUTE to a server that looks
     * like MariaDB (CLIENT_MYSQL clear) and advertises bulk operations in
     * the extended capabilities of its handshake. */
    unsigned long caps = 0, ext_caps = 0;
    mariadb_get_infov(conn, MARIADB_CONNECTION_SERVER_CAPABILITIES, &caps);
    mariadb_get_infov(conn, MARIADB_CONNECTION_EXTENDED_SERVER_CAPABILITIES, &ext_caps);
    if ((caps & CLIENT_MYSQL) || !(ext_caps & (MARIADB_CLIENT_STMT_BULK_OPERATIONS >> 32)))
        return failf("handshake does not offer MARIADB_CLIENT_STMT_BULK_OPERATIONS"
                     " (capabilities 0x%lx, extended 0x%lx)", caps, ext_caps);

    const char *t = table_name("bulk");
    if (execf(conn, "CREATE TABLE %s (id INT PRIMARY KEY, name VARCHAR(32), note VARCHAR(32))", t))
        return -1;

    enum { ROWS = 100 };
    int ids[ROWS];
    char names[ROWS][32];
    char *name_ptrs[ROWS];
    unsigned long name_lens[ROWS];
    char note_ind[ROWS];
    const char *notes[ROWS];
    for (int r = 0; r < ROWS; r++) {
        ids[r] = r + 1;
        name_lens[r] = (unsigned long)snprintf(names[r], sizeof names[r], "name-%03d", r + 1);
        name_ptrs[r] = names[r];
        notes[r] = "even";
        note_ind[r] = (r % 2) ? STMT_INDICATOR_NULL : STMT_INDICATOR_NTS;
    }

    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, name, note) VALUES (?, ?, ?)", t);
    MYSQL_STMT *stmt = mysql_stmt_init(conn);
    unsigned int array_size = ROWS;
    int rc = -1;
    if (mysql_stmt_prepare(stmt, sql, strlen(sql))) {
        fail_stmt(stmt, "prepare");
        goto out;
    }
    MYSQL_BIND bind[3];
    memset(bind, 0, sizeof bind);
    bind[0].buffer_type = MYSQL_TYPE_LONG;
    bind[0].buffer = ids;
    bind[1].buffer_type = MYSQL_TYPE_STRING;
    bind[1].buffer = name_ptrs;
    bind[1].length = name_lens;
    bind[2].buffer_type = MYSQL_TYPE_STRING;
    bind[2].buffer = notes;
    bind[2].u.indicator = note_ind;
    if (mysql_stmt_attr_set(stmt, STMT_ATTR_ARRAY_SIZE, &array_size) ||
        mysql_stmt_bind_param(stmt, bind) || mysql_stmt_execute(stmt)) {
        fail_stmt(stmt, "bulk execute");
        goto out;
    }
    if (mysql_stmt_affected_rows(stmt) != ROWS) {
        failf("bulk execute affected %llu rows, expected %d",
              (unsigned long long)mysql_stmt_affected_rows(stmt), ROWS);
        goto out;
    }
    char check[256];
    snprintf(check, sizeof check,
             "SELECT CONCAT(COUNT(*), '/', SUM(id), '/', COUNT(note), '/', MAX(name)) FROM %s", t);
    if (expect_text(conn, check, "100/5050/50/name-100"))
        goto out;
    rc = 0;
out:
    mysql_stmt_close(stmt);
    return rc;
}

/* Reads the current result set of a multi-result sequence and renders it
 * as "a,b;c,d" (rows separated by ';'). */
static int render_result(MYSQL *conn, char *out, size_t out_len)
{
    MYSQL_RES *res = mysql_store_result(conn);
    out[0] = '\0';
    if (!res)
        return mysql_field_count(conn) ? fail_conn(conn, "store_result") : 0;
    unsigned int columns = mysql_num_fields(res);
    MYSQL_ROW row;
    size_t used = 0;
    int first_row = 1;
    while ((row = mysql_fetch_row(res))) {
        used += (size_t)snprintf(out + used, out_len - used, "%s", first_row ? "" : ";");
        for (unsigned int c = 0; c < columns; c++)
            used += (size_t)snprintf(out + used, out_len - used, "%s%s",
                                     c ? "," : "", row[c] ? row[c] : "NULL");
        first_row = 0;
    }
    mysql_free_result(res);
    return 0;
}

/* Runs a multi-result query and renders it as "[r1][r2]...", where an
 * OK packet (no result set) renders as "[ok]". */
static int run_multi(MYSQL *conn, const char *sql, char *out, size_t out_len)
{
    out[0] = '\0';
    if (mysql_query(conn, sql))
        return failf("%s: %s (errno %u)", sql, mysql_error(conn), mysql_errno(conn));
    size_t used = 0;
    for (;;) {
        char rendered[256];
        int has_result = mysql_field_count(conn) != 0;
        if (render_result(conn, rendered, sizeof rendered))
            return -1;
        used += (size_t)snprintf(out + used, out_len - used, "[%s]",
                                 has_result ? rendered : "ok");
        int next = mysql_next_result(conn);
        if (next == -1)
            return 0;
        if (next > 0)
            return failf("%s: next_result: %s (errno %u)", sql, mysql_error(conn),
                         mysql_errno(conn));
    }
}

/* CALL proc(?) prepared, `proc` having one OUT parameter set to 42 and two
 * SELECTs: three result sets, the last carrying the OUT value. */
static int check_prepared_call(MYSQL *conn, const char *proc)
{
    char sql[256];
    snprintf(sql, sizeof sql, "CALL %s(?)", proc);
    MYSQL_STMT *call = mysql_stmt_init(conn);
    int in = 0, out_value = -1, results = 0, rc = -1;
    MYSQL_BIND param = { 0 };
    param.buffer_type = MYSQL_TYPE_LONG;
    param.buffer = &in;
    if (mysql_stmt_prepare(call, sql, strlen(sql)) || mysql_stmt_bind_param(call, &param) ||
        mysql_stmt_execute(call)) {
        fail_stmt(call, "prepared CALL");
        goto out;
    }
    int status;
    do {
        if (mysql_stmt_field_count(call) > 0) {
            results++;
            if (mysql_stmt_store_result(call)) {
                fail_stmt(call, "store a result of the prepared CALL");
                goto out;
            }
            if (conn->server_status & SERVER_PS_OUT_PARAMS) {
                MYSQL_BIND result = { 0 };
                result.buffer_type = MYSQL_TYPE_LONG;
                result.buffer = &out_value;
                if (mysql_stmt_bind_result(call, &result) || mysql_stmt_fetch(call) != 0) {
                    fail_stmt(call, "fetch the OUT parameter");
                    goto out;
                }
            }
            mysql_stmt_free_result(call);
        }
        status = mysql_stmt_next_result(call);
    } while (status == 0);
    if (status > 0) {
        fail_stmt(call, "next result of the prepared CALL");
        goto out;
    }
    if (results != 3 || out_value != 42) {
        failf("prepared CALL gave %d result sets and OUT %d, expected 3 and 42", results, out_value);
        goto out;
    }
    rc = 0;
out:
    mysql_stmt_close(call);
    return rc;
}

static int check_multi(MYSQL *unused)
{
    (void)unused;
    MYSQL *conn = open_conn(CONNECT_MULTI_STATEMENTS);
    if (!conn)
        return -1;
    const char *t = new_object("PROCEDURE", "proc");
    char rendered[512];
    int rc = -1;

    if (run_multi(conn, "SELECT 1; SELECT 2,3; DO 1", rendered, sizeof rendered))
        goto out;
    if (strcmp(rendered, "[1][2,3][ok]") != 0) {
        failf("multi-statement results %s, expected [1][2,3][ok]", rendered);
        goto out;
    }
    /* An error in the middle stops the sequence; the connection stays usable. */
    if (mysql_query(conn, "SELECT 1; SELECT * FROM no_such_table_sy; SELECT 3") == 0) {
        MYSQL_RES *res = mysql_store_result(conn);
        if (res)
            mysql_free_result(res);
        int next = mysql_next_result(conn);
        if (next <= 0 || mysql_errno(conn) != 1146) {
            failf("second statement should fail with 1146, got next=%d errno %u",
                  next, mysql_errno(conn));
            goto out;
        }
    } else {
        fail_conn(conn, "multi-statement with error");
        goto out;
    }
    if (expect_int(conn, "SELECT 7", 7))
        goto out;

    /* A procedure returning two result sets and an OUT parameter. */
    if (execf(conn, "CREATE PROCEDURE %s (OUT answer INT)"
                    " BEGIN SELECT 'first'; SELECT 'second', 2; SET answer = 42; END", t))
        goto out;
    char sql[256];
    snprintf(sql, sizeof sql, "CALL %s(@sy_out)", t);
    if (run_multi(conn, sql, rendered, sizeof rendered))
        goto out;
    if (strcmp(rendered, "[first][second,2][ok]") != 0) {
        failf("CALL results %s, expected [first][second,2][ok]", rendered);
        goto out;
    }
    if (expect_int(conn, "SELECT @sy_out", 42))
        goto out;
    /* Both in one multi-statement as well. */
    snprintf(sql, sizeof sql, "SET @sy_out = 0; CALL %s(@sy_out); SELECT @sy_out", t);
    if (run_multi(conn, sql, rendered, sizeof rendered))
        goto out;
    if (strcmp(rendered, "[ok][first][second,2][ok][42]") != 0) {
        failf("SET; CALL; SELECT results %s, expected [ok][first][second,2][ok][42]", rendered);
        goto out;
    }
    /* The same procedure through the binary protocol: its two result sets,
     * then one holding the OUT parameter (SERVER_PS_OUT_PARAMS), then OK. */
    if (check_prepared_call(conn, t))
        goto out;
    rc = 0;
out:
    mysql_close(conn);
    return rc;
}

static int check_local_infile(MYSQL *unused)
{
    (void)unused;
    MYSQL *conn = open_conn(CONNECT_LOCAL_INFILE);
    if (!conn)
        return -1;
    const char *t = table_name("infile");
    char path[] = "/tmp/sy_infile_XXXXXX";
    int fd = mkstemp(path);
    int rc = -1;
    if (fd < 0) {
        failf("mkstemp: %s", strerror(errno));
        goto out;
    }
    /* About 200 KiB so the file travels in many packets. */
    enum { ROWS = 5000 };
    FILE *f = fdopen(fd, "w");
    for (int r = 1; r <= ROWS; r++)
        fprintf(f, "%d\tline %d \xc3\xa4\xc3\xb6\xc3\xbc \xf0\x9f\x93\x84\t%d\n", r, r, r * 7);
    fclose(f);

    if (execf(conn, "CREATE TABLE %s (id INT PRIMARY KEY, txt VARCHAR(64), n INT)"
                    " DEFAULT CHARSET=utf8mb4", t))
        goto out;
    if (execf(conn, "LOAD DATA LOCAL INFILE '%s' INTO TABLE %s CHARACTER SET utf8mb4"
                    " (id, txt, n)", path, t))
        goto out;
    if (mysql_affected_rows(conn) != ROWS) {
        failf("LOAD DATA affected %llu rows, expected %d",
              (unsigned long long)mysql_affected_rows(conn), ROWS);
        goto out;
    }
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT CONCAT(COUNT(*), '/', SUM(n)) FROM %s", t);
    char want[64];
    snprintf(want, sizeof want, "%d/%lld", ROWS, 7LL * ROWS * (ROWS + 1) / 2);
    if (expect_text(conn, sql, want))
        goto out;
    snprintf(sql, sizeof sql, "SELECT txt FROM %s WHERE id = 4321", t);
    if (expect_text(conn, sql, "line 4321 \xc3\xa4\xc3\xb6\xc3\xbc \xf0\x9f\x93\x84"))
        goto out;

    /* A missing file: the client answers the server's request with an
     * empty packet, the statement fails, the connection stays usable. */
    snprintf(sql, sizeof sql, "LOAD DATA LOCAL INFILE '/nonexistent/sy_missing' INTO TABLE %s", t);
    if (mysql_query(conn, sql) == 0) {
        failf("LOAD DATA of a missing file succeeded");
        goto out;
    }
    if (expect_int(conn, "SELECT 11", 11))
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        unlink(path);
    mysql_close(conn);
    return rc;
}

static int check_change_user(MYSQL *conn)
{
    if (exec(conn, "SET @sy_before_change = 'set'") ||
        exec(conn, "USE information_schema") ||
        expect_text(conn, "SELECT DATABASE()", "information_schema"))
        return -1;

    if (mysql_change_user(conn, cfg.other_user, cfg.other_password, cfg.db))
        return fail_conn(conn, "mysql_change_user");

    char current[256];
    if (query_text(conn, "SELECT CURRENT_USER()", current, sizeof current))
        return -1;
    size_t user_len = strlen(cfg.other_user);
    if (strncmp(current, cfg.other_user, user_len) != 0 || current[user_len] != '@')
        return failf("CURRENT_USER() is %s, expected %s@...", current, cfg.other_user);
    if (expect_text(conn, "SELECT DATABASE()", cfg.db) ||
        expect_text(conn, "SELECT @sy_before_change", "NULL"))
        return -1;

    /* The character set from the connect options survives the change. */
    const char *client_charset = mysql_character_set_name(conn);
    if (strcmp(client_charset, "utf8mb4") != 0)
        return failf("client character set is %s after change_user, expected utf8mb4",
                     client_charset);
    if (expect_text(conn, "SELECT @@character_set_client", "utf8mb4") ||
        expect_text(conn, "SELECT @@character_set_results", "utf8mb4") ||
        expect_text(conn, "SELECT CHAR_LENGTH('\xf0\x9f\x90\xac')", "1"))
        return -1;

    /* And back to the original user. */
    if (mysql_change_user(conn, cfg.user, cfg.password, cfg.db))
        return fail_conn(conn, "mysql_change_user back");
    if (query_text(conn, "SELECT CURRENT_USER()", current, sizeof current))
        return -1;
    user_len = strlen(cfg.user);
    if (strncmp(current, cfg.user, user_len) != 0 || current[user_len] != '@')
        return failf("CURRENT_USER() is %s after changing back, expected %s@...",
                     current, cfg.user);
    return 0;
}

/* CURRENT_USER() is user@<some host>. */
static int expect_current_user(MYSQL *conn, const char *user)
{
    char current[256];
    if (query_text(conn, "SELECT CURRENT_USER()", current, sizeof current))
        return -1;
    size_t len = strlen(user);
    if (strncmp(current, user, len) != 0 || current[len] != '@')
        return failf("CURRENT_USER() is %s, expected %s@...", current, user);
    return 0;
}

/* A mysql_change_user that must be refused with errno `want` after the
 * server's one-second pause (sql_parse.cc sleeps before answering). */
static int expect_change_user_refused(MYSQL *conn, const char *user, const char *password,
                                      unsigned int want, const char *want_sqlstate)
{
    double started = now_seconds();
    if (!mysql_change_user(conn, user, password, cfg.db))
        return failf("mysql_change_user to %s succeeded, expected errno %u", user, want);
    double took = now_seconds() - started;
    if (mysql_errno(conn) != want || strcmp(mysql_sqlstate(conn), want_sqlstate) != 0)
        return failf("mysql_change_user to %s: %s (errno %u, SQLSTATE %s), expected errno %u (%s)",
                     user, mysql_error(conn), mysql_errno(conn), mysql_sqlstate(conn), want,
                     want_sqlstate);
    if (took < 0.9)
        return failf("mysql_change_user to %s refused after %.3f s, expected the server's 1 s pause",
                     user, took);
    return 0;
}

/* A wrong password for the change_user target is refused as the server
 * refuses it: 1045, its wording, after a one-second pause. The connection
 * stays, as the old user in the old database, with its session reset as
 * MariaDB resets it (user variables, temporary tables, session variables;
 * the character set becomes the server's default). A right password then
 * works. */
static int check_change_user_denied(MYSQL *conn)
{
    char wrong[256], before_id[32], sql[512];
    snprintf(wrong, sizeof wrong, "%s-not-it", cfg.other_password);
    if (exec(conn, "SET @sy_denied = 'set'") ||
        exec(conn, "CREATE TEMPORARY TABLE sy_denied_tmp (id INT)") ||
        exec(conn, "SET SESSION sql_mode = 'ANSI_QUOTES'") ||
        exec(conn, "USE information_schema") ||
        query_text(conn, "SELECT CONNECTION_ID()", before_id, sizeof before_id))
        return -1;

    if (expect_change_user_refused(conn, cfg.other_user, wrong, 1045, "28000"))
        return -1;
    if (!strstr(mysql_error(conn), "Access denied for user"))
        return fail_conn(conn, "mysql_change_user with a wrong password, expected 'Access denied'");

    if (expect_text(conn, "SELECT CONNECTION_ID()", before_id) ||
        expect_current_user(conn, cfg.user) ||
        expect_text(conn, "SELECT DATABASE()", "information_schema") ||
        expect_text(conn, "SELECT @sy_denied", "NULL") ||
        expect_text(conn, "SELECT @@session.sql_mode = @@global.sql_mode", "1") ||
        expect_text(conn, "SELECT @@character_set_client = @@global.character_set_client", "1"))
        return -1;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s.sy_denied_tmp", cfg.db);
    if (mysql_query(conn, sql) == 0)
        return failf("the temporary table survived the refused change of user");
    if (mysql_errno(conn) != 1146)
        return fail_conn(conn, "the temporary table after the refused change of user, expected 1146");

    if (mysql_change_user(conn, cfg.other_user, cfg.other_password, cfg.db))
        return fail_conn(conn, "mysql_change_user with the right password after a refusal");
    if (expect_current_user(conn, cfg.other_user))
        return -1;
    return 0;
}

/* Three refused changes of user per connection; from the fourth on every
 * change of user, even with the right password, gets 1047 "Unknown command"
 * (after the same pause) and the connection carries on as the old user. */
static int check_change_user_limit(MYSQL *conn)
{
    char wrong[256];
    snprintf(wrong, sizeof wrong, "%s-not-it", cfg.other_password);
    for (int attempt = 1; attempt <= 5; attempt++) {
        int right = attempt == 5;
        if (expect_change_user_refused(conn, cfg.other_user, right ? cfg.other_password : wrong,
                                       attempt <= 3 ? 1045 : 1047, attempt <= 3 ? "28000" : "08S01") ||
            expect_current_user(conn, cfg.user)) {
            char why[sizeof reason];
            snprintf(why, sizeof why, "%s", reason);
            return failf("attempt %d: %s", attempt, why);
        }
    }
    return expect_text(conn, "SELECT 'still here'", "still here");
}

static int check_reset_connection(MYSQL *conn)
{
    if (exec(conn, "SET @sy_reset = 'set'") ||
        exec(conn, "CREATE TEMPORARY TABLE sy_reset_tmp (id INT)") ||
        exec(conn, "INSERT INTO sy_reset_tmp VALUES (1)") ||
        exec(conn, "SET SESSION sql_mode = 'ANSI_QUOTES'"))
        return -1;
    MYSQL_STMT *stmt = mysql_stmt_init(conn);
    if (mysql_stmt_prepare(stmt, "SELECT 1", 8)) {
        fail_stmt(stmt, "prepare");
        mysql_stmt_close(stmt);
        return -1;
    }

    if (mysql_reset_connection(conn)) {
        mysql_stmt_close(stmt);
        return fail_conn(conn, "mysql_reset_connection");
    }
    /* The server forgot the statement; closing it must not disturb the
     * connection (COM_STMT_CLOSE has no response). */
    mysql_stmt_close(stmt);

    if (expect_text(conn, "SELECT @sy_reset", "NULL"))
        return -1;
    if (mysql_query(conn, "SELECT * FROM sy_reset_tmp") == 0) {
        MYSQL_RES *res = mysql_store_result(conn);
        if (res)
            mysql_free_result(res);
        return failf("temporary table survived mysql_reset_connection");
    }
    if (mysql_errno(conn) != 1146)
        return fail_conn(conn, "temporary table query should fail with 1146");
    char mode[256];
    if (query_text(conn, "SELECT @@SESSION.sql_mode = @@GLOBAL.sql_mode", mode, sizeof mode))
        return -1;
    if (strcmp(mode, "1") != 0)
        return failf("session sql_mode not reset to the global value");
    return expect_text(conn, "SELECT DATABASE()", cfg.db);
}

static int check_bigrow(MYSQL *conn)
{
    const size_t len = 20UL * 1024 * 1024;
    long long server_max;
    if (query_int(conn, "SELECT @@max_allowed_packet", &server_max))
        return -1;
    if (server_max < 64LL * 1024 * 1024)
        return failf("server max_allowed_packet too small (%lld)", server_max);

    const char *t = table_name("bigrow");
    if (execf(conn, "CREATE TABLE %s (id INT PRIMARY KEY, b LONGBLOB)", t))
        return -1;
    unsigned char *data = pattern(len, 20);
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, b) VALUES (?, ?)", t);
    MYSQL_STMT *stmt = mysql_stmt_init(conn);
    int rc = -1, id = 1;
    unsigned long data_len = len;
    if (mysql_stmt_prepare(stmt, sql, strlen(sql))) {
        fail_stmt(stmt, "prepare");
        goto out;
    }
    /* The value travels inline in COM_STMT_EXECUTE, which therefore spans
     * two wire packets (the first exactly 0xFFFFFF bytes). */
    MYSQL_BIND bind[2];
    memset(bind, 0, sizeof bind);
    bind[0].buffer_type = MYSQL_TYPE_LONG;
    bind[0].buffer = &id;
    bind[1].buffer_type = MYSQL_TYPE_LONG_BLOB;
    bind[1].buffer = data;
    bind[1].buffer_length = len;
    bind[1].length = &data_len;
    if (mysql_stmt_bind_param(stmt, bind) || mysql_stmt_execute(stmt)) {
        fail_stmt(stmt, "execute 20 MiB insert");
        goto out;
    }
    if (expect_blob_digest(conn, t, "b", 1, data, len) ||
        read_back_blob(conn, t, 1, data, len))
        goto out;

    /* A text-protocol row above 16 MiB. */
    if (mysql_query(conn, "SELECT REPEAT('x', 20*1024*1024), 'after'")) {
        fail_conn(conn, "SELECT REPEAT");
        goto out;
    }
    MYSQL_RES *res = mysql_store_result(conn);
    if (!res) {
        fail_conn(conn, "store REPEAT result");
        goto out;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    unsigned long *lengths = row ? mysql_fetch_lengths(res) : NULL;
    int good = row && row[0] && lengths[0] == len && row[1] && strcmp(row[1], "after") == 0;
    for (size_t k = 0; good && k < len; k++)
        good = row[0][k] == 'x';
    unsigned long got_len = lengths ? lengths[0] : 0;
    mysql_free_result(res);
    if (!good) {
        failf("REPEAT row wrong (first column %lu bytes)", got_len);
        goto out;
    }
    rc = expect_int(conn, "SELECT 12", 12);
out:
    mysql_stmt_close(stmt);
    free(data);
    return rc;
}

static int check_connection_id(MYSQL *conn)
{
    long long id;
    if (query_int(conn, "SELECT CONNECTION_ID()", &id))
        return -1;
    if ((unsigned long long)id != mysql_thread_id(conn))
        return failf("CONNECTION_ID() = %lld but mysql_thread_id() = %lu",
                     id, mysql_thread_id(conn));
    return 0;
}

struct sleeper {
    MYSQL *conn;
    const char *sql;
    int failed;
    unsigned int err;
    char error[256];
    char value[32];
    double seconds;
};

static void *run_sleeper(void *arg)
{
    struct sleeper *s = arg;
    double start = now_seconds();
    if (mysql_query(s->conn, s->sql)) {
        s->failed = 1;
        s->err = mysql_errno(s->conn);
        snprintf(s->error, sizeof s->error, "%s", mysql_error(s->conn));
    } else {
        MYSQL_RES *res = mysql_store_result(s->conn);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        if (row && row[0])
            snprintf(s->value, sizeof s->value, "%s", row[0]);
        else {
            s->failed = 1;
            s->err = mysql_errno(s->conn);
            snprintf(s->error, sizeof s->error, "%s", mysql_error(s->conn));
        }
        if (res)
            mysql_free_result(res);
    }
    s->seconds = now_seconds() - start;
    return NULL;
}

static int is_connection_lost(unsigned int err)
{
    /* 2006 server gone, 2013 lost during query, 2026 TLS error (a server
     * closes a killed connection without a TLS close_notify), 2055 lost
     * (system error), 1927 ER_CONNECTION_KILLED, 1053 ER_SERVER_SHUTDOWN */
    return err == 2006 || err == 2013 || err == 2026 || err == 2055 ||
           err == 1927 || err == 1053;
}

/* The connection was killed: a query on it reports a lost connection. */
static int expect_killed(MYSQL *victim, const char *how)
{
    for (int tries = 0; tries < 50; tries++) {
        if (mysql_query(victim, "SELECT 15") != 0)
            break;
        MYSQL_RES *res = mysql_store_result(victim);
        if (res)
            mysql_free_result(res);
        sleep_ms(100); /* the kill may land a moment after its OK */
    }
    if (mysql_errno(victim) == 0)
        return failf("%s: the killed connection still answers queries after 5 s", how);
    if (!is_connection_lost(mysql_errno(victim)))
        return fail_conn(victim, how);
    return 0;
}

static int check_kill_query(MYSQL *conn)
{
    MYSQL *killer = open_conn(0), *victim = NULL, *multi = NULL;
    if (!killer)
        return -1;
    int rc = -1;
    char sql[256];
    struct sleeper sleeper = { .conn = conn };
    snprintf(sql, sizeof sql, "SELECT SLEEP(10) /* sy-kill-%d */", (int)getpid());
    sleeper.sql = sql;
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_sleeper, &sleeper) != 0) {
        failf("pthread_create failed");
        goto out;
    }
    /* Wait until the sleep is visibly running (the search pattern is built
     * by CONCAT so this query does not match itself). */
    char probe[256];
    snprintf(probe, sizeof probe,
             "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
             " WHERE INFO LIKE CONCAT('%%sy-kill-', '%d', '%%')", (int)getpid());
    long long running = 0;
    for (int tries = 0; tries < 50 && running == 0; tries++) {
        if (query_int(killer, probe, &running)) {
            pthread_join(thread, NULL);
            goto out;
        }
        if (running == 0)
            sleep_ms(100);
    }
    double killed_at = now_seconds();
    int kill_failed = execf(killer, "KILL QUERY %lu", mysql_thread_id(conn));
    pthread_join(thread, NULL);
    if (kill_failed)
        goto out;
    double waited = now_seconds() - killed_at;
    if (sleeper.failed && sleeper.err != 1317) {
        failf("interrupted query failed with %s (errno %u), expected 1317 or result 1",
              sleeper.error, sleeper.err);
        goto out;
    }
    if (!sleeper.failed && strcmp(sleeper.value, "1") != 0) {
        failf("SLEEP returned %s, expected 1 (interrupted)", sleeper.value);
        goto out;
    }
    if (waited > 3.0) {
        failf("query ended %.1fs after KILL QUERY (ran %.1fs)", waited, sleeper.seconds);
        goto out;
    }
    /* The killed query's connection remains usable. */
    if (expect_int(conn, "SELECT 13", 13))
        goto out;

    /* KILL CONNECTION ends a third, idle connection; so do COM_PROCESS_KILL
     * (mysql_kill) and a KILL that is one statement of a multi-statement
     * query. Each names the proxy's id, which the proxy maps: sent unmapped,
     * it would name some other server thread and the victim would live on. */
    multi = open_conn(CONNECT_MULTI_STATEMENTS);
    if (!multi)
        goto out;
    for (int way = 0; way < 3; way++) {
        victim = open_conn(0);
        if (!victim || expect_int(victim, "SELECT 14", 14))
            goto out;
        unsigned long id = mysql_thread_id(victim);
        if (way == 0 && execf(killer, "KILL %lu", id))
            goto out;
        if (way == 1 && mysql_kill(killer, id)) {
            fail_conn(killer, "mysql_kill (COM_PROCESS_KILL)");
            goto out;
        }
        if (way == 2) {
            char both[128];
            snprintf(both, sizeof both, "SELECT 1; KILL %lu", id);
            if (mysql_query(multi, both)) {
                fail_conn(multi, both);
                goto out;
            }
            do {
                MYSQL_RES *res = mysql_store_result(multi);
                if (res)
                    mysql_free_result(res);
            } while (mysql_next_result(multi) == 0);
            if (mysql_errno(multi)) {
                fail_conn(multi, both);
                goto out;
            }
        }
        if (expect_killed(victim, way == 0 ? "KILL" : way == 1 ? "mysql_kill" : "KILL in a multi-statement query"))
            goto out;
        mysql_close(victim);
        victim = NULL;
    }
    if (expect_int(killer, "SELECT 16", 16))
        goto out;
    rc = 0;
out:
    mysql_close(killer);
    if (victim)
        mysql_close(victim);
    if (multi)
        mysql_close(multi);
    return rc;
}

static int check_admin(MYSQL *conn)
{
    if (mysql_ping(conn))
        return fail_conn(conn, "mysql_ping");
    const char *stat = mysql_stat(conn);
    if (!stat || !strstr(stat, "Uptime"))
        return stat ? failf("mysql_stat returned '%s'", stat) : fail_conn(conn, "mysql_stat");

    if (mysql_select_db(conn, "information_schema"))
        return fail_conn(conn, "mysql_select_db(information_schema)");
    if (expect_text(conn, "SELECT DATABASE()", "information_schema"))
        return -1;
    if (mysql_select_db(conn, "sy_no_such_database") == 0)
        return failf("mysql_select_db of a missing database succeeded");
    if (mysql_errno(conn) != 1044 && mysql_errno(conn) != 1049)
        return fail_conn(conn, "select_db of a missing database: expected 1044/1049");
    if (mysql_select_db(conn, cfg.db))
        return fail_conn(conn, "mysql_select_db(SY_DB)");
    if (expect_text(conn, "SELECT DATABASE()", cfg.db))
        return -1;

    /* Multi-statements are switched on and off on the server side. */
    if (mysql_set_server_option(conn, MYSQL_OPTION_MULTI_STATEMENTS_OFF))
        return fail_conn(conn, "set_server_option(OFF)");
    if (mysql_query(conn, "SELECT 1; SELECT 2") == 0)
        return failf("multi-statement accepted with MULTI_STATEMENTS_OFF");
    if (mysql_errno(conn) != 1064)
        return fail_conn(conn, "multi-statement with OFF: expected 1064");
    if (mysql_set_server_option(conn, MYSQL_OPTION_MULTI_STATEMENTS_ON))
        return fail_conn(conn, "set_server_option(ON)");
    char rendered[128];
    if (run_multi(conn, "SELECT 1; SELECT 2", rendered, sizeof rendered))
        return -1;
    if (strcmp(rendered, "[1][2]") != 0)
        return failf("multi-statement with ON returned %s", rendered);
    if (mysql_ping(conn))
        return fail_conn(conn, "second mysql_ping");
    return 0;
}

static int check_transactions(MYSQL *conn)
{
    const char *t = table_name("txn");
    if (execf(conn, "CREATE TABLE %s (id INT PRIMARY KEY) ENGINE=InnoDB", t))
        return -1;
    char count_sql[128];
    snprintf(count_sql, sizeof count_sql, "SELECT COUNT(*) FROM %s", t);

    if (!(server_status(conn) & SERVER_STATUS_AUTOCOMMIT))
        return failf("SERVER_STATUS_AUTOCOMMIT not set initially (status 0x%x)",
                     server_status(conn));
    if (mysql_autocommit(conn, 0))
        return fail_conn(conn, "autocommit(0)");
    if (server_status(conn) & SERVER_STATUS_AUTOCOMMIT)
        return failf("SERVER_STATUS_AUTOCOMMIT still set after autocommit(0)");
    if (execf(conn, "INSERT INTO %s VALUES (1)", t))
        return -1;
    if (!(server_status(conn) & SERVER_STATUS_IN_TRANS))
        return failf("SERVER_STATUS_IN_TRANS not set after INSERT with autocommit off");
    if (mysql_rollback(conn))
        return fail_conn(conn, "rollback");
    if (expect_int(conn, count_sql, 0))
        return -1;

    /* Savepoints. */
    if (execf(conn, "INSERT INTO %s VALUES (1)", t) ||
        exec(conn, "SAVEPOINT sy_sp") ||
        execf(conn, "INSERT INTO %s VALUES (2)", t) ||
        exec(conn, "ROLLBACK TO SAVEPOINT sy_sp"))
        return -1;
    if (mysql_commit(conn))
        return fail_conn(conn, "commit");
    if (expect_int(conn, count_sql, 1))
        return -1;
    if (mysql_autocommit(conn, 1))
        return fail_conn(conn, "autocommit(1)");

    /* Explicit transactions with autocommit on. */
    if (exec(conn, "BEGIN"))
        return -1;
    if (!(server_status(conn) & SERVER_STATUS_IN_TRANS))
        return failf("SERVER_STATUS_IN_TRANS not set after BEGIN (status 0x%x)",
                     server_status(conn));
    if (expect_int(conn, "SELECT @@in_transaction", 1) ||
        execf(conn, "INSERT INTO %s VALUES (3)", t) || exec(conn, "COMMIT"))
        return -1;
    if (server_status(conn) & SERVER_STATUS_IN_TRANS)
        return failf("SERVER_STATUS_IN_TRANS still set after COMMIT");
    if (exec(conn, "START TRANSACTION READ ONLY"))
        return -1;
    if (execf(conn, "INSERT INTO %s VALUES (4)", t) == 0)
        return failf("INSERT succeeded in a READ ONLY transaction");
    if (exec(conn, "ROLLBACK"))
        return -1;
    return expect_int(conn, count_sql, 2);
}

/* ---------------------------------------------------------------------- */
/* Driver                                                                 */
/* ---------------------------------------------------------------------- */

static const struct check {
    const char *name;
    int (*run)(MYSQL *conn);
} checks[] = {
    { "tls", check_tls },
    { "compression", check_compression },
    { "prepared", check_prepared },
    { "long_data", check_long_data },
    { "cursor", check_cursor },
    { "bulk", check_bulk },
    { "multi", check_multi },
    { "local_infile", check_local_infile },
    { "change_user", check_change_user },
    { "change_user_denied", check_change_user_denied },
    { "change_user_limit", check_change_user_limit },
    { "reset_connection", check_reset_connection },
    { "bigrow", check_bigrow },
    { "connection_id", check_connection_id },
    { "kill_query", check_kill_query },
    { "admin", check_admin },
    { "transactions", check_transactions },
};

#define CHECK_COUNT (sizeof checks / sizeof checks[0])

static void drop_created_objects(void)
{
    if (created_count == 0)
        return;
    MYSQL *conn = open_conn(0);
    if (!conn) {
        fprintf(stderr, "cleanup: %s\n", reason);
        return;
    }
    for (int k = 0; k < created_count; k++)
        if (execf(conn, "DROP %s IF EXISTS %s", created[k].kind, created[k].name))
            fprintf(stderr, "cleanup: %s\n", reason);
    mysql_close(conn);
}

int main(int argc, char **argv)
{
    if (load_config())
        return 2;
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0, failed = 0;

    for (size_t k = 0; k < CHECK_COUNT; k++) {
        if (only && strcmp(only, checks[k].name) != 0)
            continue;
        ran++;
        reason[0] = '\0';
        MYSQL *conn = open_conn(0);
        int rc = conn ? checks[k].run(conn) : -1;
        if (conn)
            mysql_close(conn);
        if (rc == 0) {
            printf("ok %s\n", checks[k].name);
        } else {
            printf("FAIL %s: %s\n", checks[k].name, reason[0] ? reason : "unknown error");
            failed++;
        }
        fflush(stdout);
    }
    drop_created_objects();

    if (ran == 0) {
        fprintf(stderr, "unknown check '%s'; checks are:", only);
        for (size_t k = 0; k < CHECK_COUNT; k++)
            fprintf(stderr, " %s", checks[k].name);
        fprintf(stderr, "\n");
        return 2;
    }
    return failed ? 1 : 0;
}
