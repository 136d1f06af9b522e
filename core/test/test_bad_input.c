/* test_bad_input.c - the bad-input table at the C API: every row is built
 * with signalr_request_build() or signalr_client_negotiate() and must fail
 * with its code, leaving the request zeroed (nothing to send). */
#include "harness.h"
#include "signalr.h"

#include <stdlib.h>

#define CS "Endpoint=http://localhost;Port=8888;AccessKey=" \
           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);

    if (s) {
        memset(s, c, n);
        s[n] = '\0';
    }
    return s;
}

static signalr_params base(void)
{
    signalr_params p;

    memset(&p, 0, sizeof(p));
    p.hub = "chat";
    p.user = "u";
    p.group = "g";
    p.connection = "c";
    p.target = "t";
    p.ttl = SIGNALR_TTL_NONE;
    return p;
}

int main(void)
{
    signalr_client_options o;
    signalr_client *c;
    signalr_error e;
    char *mb10 = rep('x', 10 * 1024 * 1024), *g1025 = rep('g', 1025);
    char *args10 = malloc(10 * 1024 * 1024 + 8);
    const char **many = malloc(100000 * sizeof(*many));
    size_t i;
    struct {
        const char *name;
        signalr_op op;
        signalr_params p;
        signalr_err want;
    } rows[32];
    size_t n = 0;

    if (!mb10 || !g1025 || !args10 || !many)
        return 1;
    memcpy(args10, "[\"", 2);
    memset(args10 + 2, 'a', 10 * 1024 * 1024);
    memcpy(args10 + 2 + 10 * 1024 * 1024, "\"]", 3);
    for (i = 0; i < 100000; i++)
        many[i] = "connection-id";
    memset(&o, 0, sizeof(o));
    o.api_version = "2024-12-01";
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "client");

#define ROW(nm, o_, field, value, code)                                     \
    do {                                                                    \
        rows[n].name = nm;                                                  \
        rows[n].op = o_;                                                    \
        rows[n].p = base();                                                 \
        rows[n].p.field = value;                                            \
        rows[n].want = code;                                                \
        n++;                                                                \
    } while (0)
    ROW("invalid UTF-8 user", SIGNALR_OP_SEND_TO_USER, user, "\xff",
        SIGNALR_EINVAL);
    ROW("overlong UTF-8 group", SIGNALR_OP_GROUP_EXISTS, group, "\xc0\xaf",
        SIGNALR_EINVAL);
    ROW("surrogate in a target", SIGNALR_OP_BROADCAST, target,
        "\xed\xa0\x80", SIGNALR_EINVAL);
    ROW("10 MB group", SIGNALR_OP_GROUP_EXISTS, group, mb10, SIGNALR_EINVAL);
    ROW("1025-character group", SIGNALR_OP_SEND_TO_GROUP, group, g1025,
        SIGNALR_EINVAL);
    ROW("1025-character user", SIGNALR_OP_USER_EXISTS, user, g1025,
        SIGNALR_EINVAL);
    ROW("10 MB connection id", SIGNALR_OP_CONNECTION_EXISTS, connection,
        mb10, SIGNALR_ETOOBIG);
    ROW("10 MB target", SIGNALR_OP_BROADCAST, target, mb10, SIGNALR_ETOOBIG);
    ROW("group with a line break", SIGNALR_OP_ADD_USER_TO_GROUP, group,
        "a\nb", SIGNALR_EINVAL);
    ROW("blank group", SIGNALR_OP_ADD_USER_TO_GROUP, group, " ",
        SIGNALR_EINVAL);
    ROW("missing hub", SIGNALR_OP_BROADCAST, hub, NULL, SIGNALR_EINVAL);
    ROW("bad hub", SIGNALR_OP_BROADCAST, hub, "chat room", SIGNALR_EINVAL);
    ROW("missing user", SIGNALR_OP_SEND_TO_USER, user, NULL, SIGNALR_EINVAL);
    ROW("arguments [1}", SIGNALR_OP_BROADCAST, arguments, "[1}",
        SIGNALR_EINVAL);
    ROW("arguments [NaN]", SIGNALR_OP_BROADCAST, arguments, "[NaN]",
        SIGNALR_EINVAL);
    ROW("negative ttl", SIGNALR_OP_ADD_USER_TO_GROUP, ttl, -1,
        SIGNALR_EINVAL);
    ROW("huge ttl", SIGNALR_OP_ADD_USER_TO_GROUP, ttl, 2147483648L,
        SIGNALR_EINVAL);
    ROW("negative minutes", SIGNALR_OP_GENERATE_CLIENT_TOKEN,
        minutes_to_expire, -3, SIGNALR_EINVAL);
    ROW("page size 201", SIGNALR_OP_LIST_GROUP_CONNECTIONS, max_page_size,
        201, SIGNALR_EINVAL);
    ROW("negative top", SIGNALR_OP_LIST_GROUP_CONNECTIONS, top, -1,
        SIGNALR_EINVAL);
    ROW("empty continuation token", SIGNALR_OP_LIST_GROUP_CONNECTIONS,
        continuation_token, "", SIGNALR_EINVAL);
    ROW("invalid UTF-8 reason", SIGNALR_OP_CLOSE_CONNECTION, reason, "\xff",
        SIGNALR_EINVAL);
#undef ROW
    /* rows needing two fields */
    rows[n].name = "10 MB arguments";
    rows[n].op = SIGNALR_OP_BROADCAST;
    rows[n].p = base();
    rows[n].p.arguments = args10;
    rows[n].p.arguments_len = strlen(args10);
    rows[n].want = SIGNALR_ETOOBIG;
    n++;
    rows[n].name = "100000 excluded ids";
    rows[n].op = SIGNALR_OP_BROADCAST;
    rows[n].p = base();
    rows[n].p.excluded = many;
    rows[n].p.excluded_count = 100000;
    rows[n].want = SIGNALR_ETOOBIG;
    n++;

    for (i = 0; i < n; i++) {
        signalr_request r;
        signalr_err rc;

        if (rows[i].p.arguments && !rows[i].p.arguments_len)
            rows[i].p.arguments_len = strlen(rows[i].p.arguments);
        rc = signalr_request_build(c, rows[i].op, &rows[i].p, 1700000000, &r,
                                   &e);
        CHECK(rc == rows[i].want, rows[i].name);
        CHECK(!r.url && !r.body && !r.authorization, "nothing built");
        CHECK(e.msg[0] != '\0', "a message");
    }
    /* negotiate: bad claims and lifetimes */
    {
        static const char *const bad_claims[] = {
            "{\"a\":1", "[1]", "{\"a\":NaN}", "{\"a\" 1}", "{\"a\":1}}"};
        char *url = NULL, *tok = NULL;

        for (i = 0; i < sizeof(bad_claims) / sizeof(*bad_claims); i++) {
            CHECK(signalr_client_negotiate(c, "chat", NULL, bad_claims[i], 0,
                                           1700000000, &url, &tok, &e) ==
                      SIGNALR_EINVAL && !url && !tok, bad_claims[i]);
        }
        CHECK(signalr_client_negotiate(c, "chat", "\xff", NULL, 0,
                                       1700000000, &url, &tok, &e) ==
                  SIGNALR_EINVAL, "negotiate: invalid UTF-8 user");
    }
    signalr_client_free(c);
    free(mb10);
    free(g1025);
    free(args10);
    free((void *)many);
    return t_done("test_bad_input");
}
