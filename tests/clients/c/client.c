/* One CometQL operation through MariaDB Connector/C (libmariadb), the library under mysqlclient
 * (MySQLdb), the mysql command line and most C/C++ backends.
 *
 * argv: op host port user password database [arg]
 *   publish / prepared_publish: arg = pipe, event; messages on stdin, each ended by a NUL byte
 *   personal: arg = user_id event; the message on stdin (NUL-ended)
 *   query: arg = sql
 * stdout: one JSON object, as tests/clients/drivers.py documents.
 */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int fail(unsigned int errno_, const char *message) {
    printf("{\"error\": {\"errno\": %u, \"message\": ", errno_);
    json_string(message, strlen(message));
    printf("}}");
    return 0;
}

/* Read NUL-ended strings from stdin into a list. */
static char **read_messages(size_t *count) {
    size_t cap = 0, len = 0, n = 0, ncap = 8;
    char *buf = NULL;
    int c;
    while ((c = getchar()) != EOF) {
        if (len + 1 >= cap) { cap = cap ? cap * 2 : 4096; buf = realloc(buf, cap); }
        buf[len++] = (char)c;
    }
    char **out = malloc(ncap * sizeof *out);
    for (size_t start = 0; start < len;) {
        if (n == ncap) { ncap *= 2; out = realloc(out, ncap * sizeof *out); }
        out[n++] = buf + start;
        start += strlen(buf + start) + 1;
    }
    *count = n;
    return out;
}

static char *quoted(MYSQL *db, const char *s) {
    size_t n = strlen(s);
    char *q = malloc(2 * n + 3);
    q[0] = '\'';
    size_t m = mysql_real_escape_string(db, q + 1, s, (unsigned long)n);
    q[m + 1] = '\'';
    q[m + 2] = 0;
    return q;
}

int main(int argc, char **argv) {
    if (argc < 7) { fprintf(stderr, "usage: op host port user password database [args]\n"); return 2; }
    const char *op = argv[1];
    MYSQL *db = mysql_init(NULL);
    my_bool no = 0;
    mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &no);
    mysql_optionsv(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(db, argv[2], argv[4], argv[5], argv[6], (unsigned)atoi(argv[3]), NULL, 0))
        return fail(mysql_errno(db), mysql_error(db));

    if (!strcmp(op, "prepared_publish")) {
        size_t n;
        char **messages = read_messages(&n);
        const char *sql = "INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)";
        MYSQL_STMT *st = mysql_stmt_init(db);
        if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)))
            return fail(mysql_stmt_errno(st), mysql_stmt_error(st));
        printf("{\"affected\": [");
        for (size_t i = 0; i < n; i++) {
            const char *values[3] = {argv[7], argv[8], messages[i]};
            unsigned long lengths[3];
            MYSQL_BIND bind[3];
            memset(bind, 0, sizeof bind);
            for (int k = 0; k < 3; k++) {
                lengths[k] = (unsigned long)strlen(values[k]);
                bind[k].buffer_type = MYSQL_TYPE_STRING;
                bind[k].buffer = (void *)values[k];
                bind[k].buffer_length = lengths[k];
                bind[k].length = &lengths[k];
            }
            if (mysql_stmt_bind_param(st, bind) || mysql_stmt_execute(st)) {
                printf("], \"error\": {\"errno\": %u, \"message\": ", mysql_stmt_errno(st));
                json_string(mysql_stmt_error(st), strlen(mysql_stmt_error(st)));
                printf("}}");
                return 0;
            }
            printf("%s%llu", i ? ", " : "", (unsigned long long)mysql_stmt_affected_rows(st));
        }
        printf("]}");
        mysql_stmt_close(st);
    } else if (!strcmp(op, "publish") || !strcmp(op, "personal")) {
        size_t n;
        char **messages = read_messages(&n);
        printf("{\"affected\": [");
        for (size_t i = 0; i < n; i++) {
            char *a = quoted(db, argv[7]), *b = quoted(db, argv[8]), *c = quoted(db, messages[i]);
            char *sql = malloc(strlen(a) + strlen(b) + strlen(c) + 100);
            if (!strcmp(op, "publish"))
                sprintf(sql, "INSERT INTO pipes_messages (name, event, message) VALUES (%s, %s, %s)", a, b, c);
            else
                sprintf(sql, "INSERT INTO users_messages (id, event, message) VALUES (%d, %s, %s)", atoi(argv[7]), b, c);
            if (mysql_query(db, sql)) {
                printf("], \"error\": {\"errno\": %u, \"message\": ", mysql_errno(db));
                json_string(mysql_error(db), strlen(mysql_error(db)));
                printf("}}");
                return 0;
            }
            printf("%s%llu", i ? ", " : "", (unsigned long long)mysql_affected_rows(db));
        }
        printf("]}");
    } else if (!strcmp(op, "query")) {
        if (mysql_query(db, argv[7])) return fail(mysql_errno(db), mysql_error(db));
        MYSQL_RES *res = mysql_store_result(db);
        if (!res) { printf("{\"rows\": null}"); return 0; }
        /* Text protocol: every value is a string to the C API; report them as such. */
        printf("{\"rows\": [");
        MYSQL_ROW row;
        unsigned int cols = mysql_num_fields(res);
        for (int r = 0; (row = mysql_fetch_row(res)); r++) {
            unsigned long *len = mysql_fetch_lengths(res);
            printf("%s[", r ? ", " : "");
            for (unsigned int k = 0; k < cols; k++) {
                if (k) printf(", ");
                if (row[k]) json_string(row[k], len[k]); else printf("null");
            }
            printf("]");
        }
        printf("]}");
        mysql_free_result(res);
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    mysql_close(db);
    return 0;
}
