/* test_request.c - the builder over every row of the operation table, both
 * route families, plus tokens, negotiate and input rejection. */
#include "harness.h"
#include "signalr.h"

#include <stdlib.h>

#define KEY "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
#define CS "Endpoint=http://localhost;Port=8888;AccessKey=" KEY ";Version=1.0;"
#define NOW 1700000000

static const char *const EXCL[] = {"c 1", "c2"};

static const struct {
    signalr_op op;
    const char *method, *path, *v1_method, *v1_path;
} ROUTES[] = {
    {SIGNALR_OP_BROADCAST, "POST",
     "/api/hubs/chat/:send?api-version=2022-06-01", "POST",
     "/api/v1/hubs/chat"},
    {SIGNALR_OP_SEND_TO_USER, "POST",
     "/api/hubs/chat/users/u%2F1/:send?api-version=2022-06-01", "POST",
     "/api/v1/hubs/chat/users/u%2F1"},
    {SIGNALR_OP_SEND_TO_GROUP, "POST",
     "/api/hubs/chat/groups/g%20x/:send?api-version=2022-06-01", "POST",
     "/api/v1/hubs/chat/groups/g%20x"},
    {SIGNALR_OP_SEND_TO_CONNECTION, "POST",
     "/api/hubs/chat/connections/c%3F1/:send?api-version=2022-06-01", "POST",
     "/api/v1/hubs/chat/connections/c%3F1"},
    {SIGNALR_OP_ADD_CONNECTION_TO_GROUP, "PUT",
     "/api/hubs/chat/groups/g%20x/connections/c%3F1?api-version=2022-06-01",
     "PUT", "/api/v1/hubs/chat/groups/g%20x/connections/c%3F1"},
    {SIGNALR_OP_REMOVE_CONNECTION_FROM_GROUP, "DELETE",
     "/api/hubs/chat/groups/g%20x/connections/c%3F1?api-version=2022-06-01",
     "DELETE", "/api/v1/hubs/chat/groups/g%20x/connections/c%3F1"},
    {SIGNALR_OP_REMOVE_CONNECTION_FROM_ALL_GROUPS, "DELETE",
     "/api/hubs/chat/connections/c%3F1/groups?api-version=2022-06-01", NULL,
     NULL},
    {SIGNALR_OP_ADD_USER_TO_GROUP, "PUT",
     "/api/hubs/chat/users/u%2F1/groups/g%20x?api-version=2022-06-01&ttl=60",
     "PUT", "/api/v1/hubs/chat/groups/g%20x/users/u%2F1?ttl=60"},
    {SIGNALR_OP_REMOVE_USER_FROM_GROUP, "DELETE",
     "/api/hubs/chat/users/u%2F1/groups/g%20x?api-version=2022-06-01",
     "DELETE", "/api/v1/hubs/chat/groups/g%20x/users/u%2F1"},
    {SIGNALR_OP_REMOVE_USER_FROM_ALL_GROUPS, "DELETE",
     "/api/hubs/chat/users/u%2F1/groups?api-version=2022-06-01", "DELETE",
     "/api/v1/hubs/chat/users/u%2F1/groups"},
    {SIGNALR_OP_CONNECTION_EXISTS, "HEAD",
     "/api/hubs/chat/connections/c%3F1?api-version=2022-06-01", "GET",
     "/api/v1/hubs/chat/connections/c%3F1"},
    {SIGNALR_OP_USER_EXISTS, "HEAD",
     "/api/hubs/chat/users/u%2F1?api-version=2022-06-01", "GET",
     "/api/v1/hubs/chat/users/u%2F1"},
    {SIGNALR_OP_GROUP_EXISTS, "HEAD",
     "/api/hubs/chat/groups/g%20x?api-version=2022-06-01", "GET",
     "/api/v1/hubs/chat/groups/g%20x"},
    {SIGNALR_OP_USER_IN_GROUP, "HEAD",
     "/api/hubs/chat/users/u%2F1/groups/g%20x?api-version=2022-06-01", "GET",
     "/api/v1/hubs/chat/groups/g%20x/users/u%2F1"},
    {SIGNALR_OP_CLOSE_CONNECTION, "DELETE",
     "/api/hubs/chat/connections/c%3F1?api-version=2022-06-01&reason=bye%21",
     "DELETE", "/api/v1/hubs/chat/connections/c%3F1?reason=bye%21"},
    {SIGNALR_OP_CLOSE_ALL_CONNECTIONS, "POST",
     "/api/hubs/chat/:closeConnections?api-version=2022-06-01&reason=bye%21",
     NULL, NULL},
    {SIGNALR_OP_CLOSE_GROUP_CONNECTIONS, "POST",
     "/api/hubs/chat/groups/g%20x/:closeConnections?api-version=2022-06-01"
     "&reason=bye%21", NULL, NULL},
    {SIGNALR_OP_CLOSE_USER_CONNECTIONS, "POST",
     "/api/hubs/chat/users/u%2F1/:closeConnections?api-version=2022-06-01"
     "&reason=bye%21", NULL, NULL},
    /* v1.json has only HEAD /api/v1/health */
    {SIGNALR_OP_HEALTH, "HEAD", "/api/health?api-version=2022-06-01", "HEAD",
     "/api/v1/health"},
};

static signalr_params base_params(void)
{
    signalr_params p;

    memset(&p, 0, sizeof(p));
    p.hub = "Chat";
    p.user = "u/1";
    p.group = "g x";
    p.connection = "c?1";
    p.target = "newMessage";
    p.arguments = "[\"hi\",{\"x\":1}]";
    p.arguments_len = strlen(p.arguments);
    p.reason = "bye!";
    p.ttl = 60;
    return p;
}

/* The JWT's aud must be the request URL on the Endpoint host, no port, no
 * query. */
static void check_aud(const signalr_request *r, const char *path)
{
    char want[1024], *payload = NULL;
    const char *q = strchr(path, '?');
    signalr_error e;

    snprintf(want, sizeof(want), "\"aud\":\"http://localhost%.*s\"",
             (int)(q ? (size_t)(q - path) : strlen(path)), path);
    CHECK(r->authorization && !strncmp(r->authorization, "Bearer ", 7),
          "bearer header");
    if (!r->authorization)
        return;
    CHECK(!signalr_jwt_verify(r->authorization + 7,
                              strlen(r->authorization + 7),
                              (const unsigned char *)KEY, strlen(KEY), NOW,
                              &payload, NULL, &e), "token verifies");
    CHECK(payload && strstr(payload, want), want);
    CHECK(payload && strstr(payload, "\"exp\":1700003600"), "exp = now+1h");
    signalr_free(payload);
}

static void routes(int v1)
{
    signalr_client_options o;
    signalr_client *c;
    signalr_error e;
    size_t i;

    memset(&o, 0, sizeof(o));
    o.api_version = v1 ? "v1" : NULL;
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "client");
    for (i = 0; i < sizeof(ROUTES) / sizeof(*ROUTES); i++) {
        signalr_params p = base_params();
        const char *method = v1 ? ROUTES[i].v1_method : ROUTES[i].method;
        const char *path = v1 ? ROUTES[i].v1_path : ROUTES[i].path;
        signalr_request r;
        signalr_err rc = signalr_request_build(c, ROUTES[i].op, &p, NOW, &r,
                                               &e);
        char url[1024];

        if (!path) {
            CHECK(rc == SIGNALR_EUNSUPPORTED, "v1 lacks the route");
            CHECK(strstr(e.msg, "needs api_version 2022-06-01") != NULL,
                  "v1: clear message");
            continue;
        }
        CHECK(rc == SIGNALR_OK, signalr_op_name(ROUTES[i].op));
        if (rc) {
            fprintf(stderr, "  %s\n", e.msg);
            continue;
        }
        CHECK_STR(r.method, method, "method");
        CHECK_STR(r.path, path, "path and query");
        snprintf(url, sizeof(url), "http://localhost:8888%s", path);
        CHECK_STR(r.url, url, "url");
        CHECK_STR(r.host, "localhost", "host");
        CHECK(r.port == 8888 && !r.tls, "port");
        CHECK_STR(r.user_agent, "lua-signalr/" SIGNALR_VERSION, "user agent");
        if (ROUTES[i].op == SIGNALR_OP_HEALTH)
            CHECK(!r.authorization, "health has no token");
        else
            check_aud(&r, path);
        if (!strcmp(method, "POST") &&
            ROUTES[i].op <= SIGNALR_OP_SEND_TO_CONNECTION) {
            CHECK_STR(r.body, "{\"target\":\"newMessage\",\"arguments\":"
                              "[\"hi\",{\"x\":1}]}", "body");
            CHECK_STR(r.content_type, "application/json; charset=utf-8",
                      "content type");
        } else {
            CHECK(!r.body && !r.content_type, "no body");
        }
        CHECK(r.idempotent == signalr_op_idempotent(ROUTES[i].op),
              "idempotent flag");
        signalr_request_clear(&r);
        signalr_request_clear(&r);
    }
    signalr_client_free(c);
}

/* 1 when s occurs in the path part (before any query) of path. */
static int in_path(const char *path, const char *s)
{
    const char *m = strstr(path, s), *q = strchr(path, '?');

    return m && (!q || m < q);
}

/* 1 when the path part of path ends with s. */
static int ends_path(const char *path, const char *s)
{
    const char *q = strchr(path, '?');
    size_t n = q ? (size_t)(q - path) : strlen(path), k = strlen(s);

    return n >= k && !strncmp(path + n - k, s, k);
}

/* "." and ".." where a path segment would hold them are refused for every
 * operation (libcurl and proxies would fold them into another route:
 * users/../:send is the broadcast route); where the value is not a path
 * segment (a token's userId query) or only contains dots, it is built. */
static void dot_segments(const char *api_version)
{
    static const char *const DOTS[] = {".", "..", "..x", "a..", "./a",
                                       "../..", "%2E%2E"};
    signalr_client_options o;
    signalr_client *c;
    signalr_error e;
    int op;
    size_t d, which;

    memset(&o, 0, sizeof(o));
    o.api_version = api_version;
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "client");
    for (op = 0; op < SIGNALR_OP_MAX; op++) {
        for (which = 0; which < 3; which++) {
            const char *marks[] = {"u%2F1", "g%20x", "c%3F1"};
            signalr_params p = base_params();
            signalr_request r;
            int segment;

            p.commands = "[]";
            p.commands_len = 2;
            if (signalr_request_build(c, (signalr_op)op, &p, NOW, &r, &e))
                continue; /* not on this route family */
            segment = in_path(r.path, marks[which]);
            signalr_request_clear(&r);
            for (d = 0; d < sizeof(DOTS) / sizeof(*DOTS); d++) {
                const char *v = DOTS[d];
                int dot = !strcmp(v, ".") || !strcmp(v, "..");
                signalr_err rc;
                char want[96];

                if (which == 0)
                    p.user = v;
                else if (which == 1)
                    p.group = v;
                else
                    p.connection = v;
                rc = signalr_request_build(c, (signalr_op)op, &p, NOW, &r,
                                           &e);
                if (segment && dot) {
                    snprintf(want, sizeof(want), "%s \"%s\" is a dot "
                             "segment: it would change the request's path",
                             which == 0 ? "user id" : which == 1
                             ? "group name" : "connection id", v);
                    CHECK(rc == SIGNALR_EINVAL, signalr_op_name(op));
                    CHECK_STR(e.msg, want, "dot segment message");
                    CHECK(!r.url && !r.path, "nothing built");
                } else {
                    CHECK(rc == SIGNALR_OK, signalr_op_name(op));
                    CHECK(!rc && !in_path(r.path, "/../") &&
                          !in_path(r.path, "/./") &&
                          !ends_path(r.path, "/..") &&
                          !ends_path(r.path, "/."), r.path ? r.path : "-");
                }
                signalr_request_clear(&r);
            }
        }
    }
    signalr_client_free(c);
}

static signalr_err build1(signalr_client *c, signalr_op op,
                          const signalr_params *p, signalr_error *e)
{
    signalr_request r;
    signalr_err rc = signalr_request_build(c, op, p, NOW, &r, e);

    CHECK(rc || r.url, "built");
    CHECK(!rc || (!r.url && !r.body && !r.authorization),
          "nothing is built for a rejected input");
    signalr_request_clear(&r);
    return rc;
}

/* The builder's shortcuts (copies of text with nothing to escape, the
 * body in one piece, the audience on the stack) against their slow paths:
 * the same bytes either way. */
static void shortcuts(void)
{
    signalr_client_options o;
    signalr_client *c;
    signalr_request r;
    signalr_params p;
    signalr_error e;
    char id[701], path[1024], *w = NULL;
    size_t n = 0;

    memset(&o, 0, sizeof(o));
    o.application = "Ap[p]";
    o.api_version = "2024-12-01";
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "client");
    /* a hub to lower-case and escape; the application in the query */
    p = base_params();
    p.hub = "H`U,b[1]";
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW, &r, &e),
          "escaped hub");
    CHECK_STR(r.path, "/api/hubs/h%60u%2Cb%5B1%5D/:send?application=ap%5Bp%5D"
                      "&api-version=2024-12-01", "hub and application");
    CHECK_STR(r.url, "http://localhost:8888/api/hubs/h%60u%2Cb%5B1%5D/:send?"
                     "application=ap%5Bp%5D&api-version=2024-12-01", "url");
    check_aud(&r, "/api/hubs/h%60u%2Cb%5B1%5D/:send");
    CHECK(!signalr_request_wire(&r, &w, &n, &e), "wire");
    CHECK(w && n > 230 && !memcmp(w, "POST /api/hubs/h%60u%2Cb%5B1%5D/:send?"
                                     "application=ap%5Bp%5D&api-version="
                                     "2024-12-01 HTTP/1.1\r\nHost: localhost"
                                     ":8888\r\n", 95), "request line");
    {
        static const char tail[] = "\r\n\r\n{\"target\":\"newMessage\","
                                   "\"arguments\":[\"hi\",{\"x\":1}]}";

        CHECK(w && n > sizeof(tail) &&
              !memcmp(w + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1),
              "body last");
    }
    signalr_free(w);
    signalr_request_clear(&r);
    /* a target with a control character: escaped as \u0001 */
    p = base_params();
    p.target = "a\001b~";
    CHECK(!signalr_request_build(c, SIGNALR_OP_SEND_TO_GROUP, &p, NOW, &r,
                                 &e), "control in target");
    CHECK_STR(r.body, "{\"target\":\"a\\u0001b~\",\"arguments\":"
                      "[\"hi\",{\"x\":1}]}", "control escaped");
    CHECK(r.body_len == strlen(r.body), "body length");
    signalr_request_clear(&r);
    /* an audience longer than the builder's stack room */
    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    id[0] = '~';
    id[1] = '/';
    p = base_params();
    p.user = id;
    CHECK(!signalr_request_build(c, SIGNALR_OP_SEND_TO_USER, &p, NOW, &r, &e),
          "long user id");
    snprintf(path, sizeof(path), "/api/hubs/chat/users/~%%2F%s/:send", id + 2);
    check_aud(&r, path);
    CHECK(r.path && !strncmp(r.path, path, strlen(path)) &&
          !strcmp(r.path + strlen(path), "?application=ap%5Bp%5D"
                                         "&api-version=2024-12-01"),
          "long path");
    signalr_request_clear(&r);
    /* tokens cached per audience, two audiences in turn */
    {
        signalr_request a, b2;

        p = base_params();
        CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW, &a,
                                     &e), "audience a");
        p.hub = "other";
        CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW + 1,
                                     &b2, &e), "audience b");
        CHECK(strcmp(a.authorization, b2.authorization) != 0,
              "a token per audience");
        signalr_request_clear(&b2);
        p.hub = "chat";
        CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW + 2,
                                     &b2, &e), "audience a again");
        CHECK_STR(b2.authorization, a.authorization, "a's token reused");
        signalr_request_clear(&b2);
        CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW + 3400,
                                     &b2, &e), "audience a near expiry");
        CHECK(strcmp(b2.authorization, a.authorization) != 0,
              "a's token renewed");
        signalr_request_clear(&b2);
        signalr_request_clear(&a);
    }
    signalr_client_free(c);
    /* v1: the application in the hub segment */
    o.api_version = "v1";
    o.application = "MyApp";
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "v1 client");
    p = base_params();
    CHECK(!signalr_request_build(c, SIGNALR_OP_SEND_TO_CONNECTION, &p, NOW,
                                 &r, &e), "v1 app");
    CHECK_STR(r.path, "/api/v1/hubs/myapp_chat/connections/c%3F1",
              "v1 application prefix");
    check_aud(&r, "/api/v1/hubs/myapp_chat/connections/c%3F1");
    signalr_request_clear(&r);
    signalr_client_free(c);
}

int main(void)
{
    signalr_client_options o;
    signalr_client *c;
    signalr_request r, r2;
    signalr_params p;
    signalr_error e;
    char *big, *url, *tok, *payload;

    routes(0);
    routes(1);
    shortcuts();
    dot_segments(NULL);
    dot_segments("v1");
    dot_segments("2024-12-01");

    CHECK(!signalr_client_new(CS, strlen(CS), NULL, &c, &e), "client");
    /* excluded ids repeat the key, each escaped */
    p = base_params();
    p.excluded = EXCL;
    p.excluded_count = 2;
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW, &r, &e),
          "broadcast with exclusions");
    CHECK_STR(r.path, "/api/hubs/chat/:send?api-version=2022-06-01"
                      "&excluded=c%201&excluded=c2", "excluded query");
    /* token cache: same audience, same token; 1h later, a new one */
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW + 60, &r2,
                                 &e), "again");
    CHECK_STR(r2.authorization, r.authorization, "token reused");
    signalr_request_clear(&r2);
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW + 3400,
                                 &r2, &e), "near expiry");
    CHECK(strcmp(r2.authorization, r.authorization) != 0,
          "token renewed 5 minutes before expiry");
    signalr_request_clear(&r2);
    signalr_request_clear(&r);
    /* no arguments means [] */
    p.arguments = NULL;
    CHECK(!signalr_request_build(c, SIGNALR_OP_SEND_TO_USER, &p, NOW, &r,
                                 &e), "no args");
    CHECK_STR(r.body, "{\"target\":\"newMessage\",\"arguments\":[]}",
              "empty arguments encode as []");
    signalr_request_clear(&r);
    /* target is JSON-escaped */
    p.target = "a\"b\\c\n";
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW, &r, &e),
          "escaped target");
    CHECK_STR(r.body, "{\"target\":\"a\\\"b\\\\c\\n\",\"arguments\":[]}",
              "target escaping");
    signalr_request_clear(&r);
    /* ttl unset: no query */
    p = base_params();
    p.ttl = SIGNALR_TTL_NONE;
    CHECK(!signalr_request_build(c, SIGNALR_OP_ADD_USER_TO_GROUP, &p, NOW,
                                 &r, &e), "no ttl");
    CHECK_STR(r.path, "/api/hubs/chat/users/u%2F1/groups/g%20x"
                      "?api-version=2022-06-01", "no ttl query");
    signalr_request_clear(&r);

    /* bad inputs: each rejected with its own reason, nothing built */
    p = base_params();
    p.hub = "bad-hub";
    CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL, "hub");
    p = base_params();
    p.user = "";
    CHECK(build1(c, SIGNALR_OP_SEND_TO_USER, &p, &e) == SIGNALR_EINVAL,
          "empty user");
    CHECK_STR(e.msg, "user id is empty", "empty user message");
    p = base_params();
    p.group = "   ";
    CHECK(build1(c, SIGNALR_OP_SEND_TO_GROUP, &p, &e) == SIGNALR_EINVAL,
          "blank group");
    p = base_params();
    p.target = "";
    CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL,
          "empty target");
    CHECK_STR(e.msg, "target is empty", "target message");
    /* arguments JSON cannot carry: refused before anything is built */
    p = base_params();
    p.arguments = "[\"bad\xff\xfe\"]";
    p.arguments_len = strlen(p.arguments);
    CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL,
          "invalid UTF-8 arguments");
    CHECK_STR(e.msg, "arguments are not valid UTF-8 (byte 6): JSON carries "
                     "text only", "invalid UTF-8 message");
    p.arguments = "[\"\xed\xa0\x80\"]"; /* a UTF-16 surrogate */
    p.arguments_len = strlen(p.arguments);
    CHECK(build1(c, SIGNALR_OP_SEND_TO_USER, &p, &e) == SIGNALR_EINVAL,
          "encoded surrogate");
    p.arguments = "[\"caf\xc3\xa9 \xf0\x9f\x8e\xae\"]";
    p.arguments_len = strlen(p.arguments);
    CHECK(build1(c, SIGNALR_OP_SEND_TO_GROUP, &p, &e) == SIGNALR_OK,
          "valid UTF-8 arguments");
    p = base_params();
    p.arguments = "{\"a\":1}";
    p.arguments_len = 7;
    CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL,
          "arguments not an array");
    CHECK_STR(e.msg, "arguments must be a JSON array", "not an array message");
    {
        /* valid JSON nested past the check's depth: said so */
        static char deep[2 * 513 + 1];

        memset(deep, '[', 513);
        memset(deep + 513, ']', 513);
        p.arguments = deep;
        p.arguments_len = 2 * 513;
        CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL,
              "513 deep");
        CHECK_STR(e.msg, "arguments nest more than 512 arrays and objects "
                         "deep (the list itself is one)", "513 deep message");
        p.arguments = deep + 1;
        p.arguments_len = 2 * 512;
        CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_OK,
              "512 deep");
        /* too deep but broken too: still "not an array" */
        p.arguments = deep;
        p.arguments_len = 513 + 10;
        CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL,
              "513 deep, unterminated");
        CHECK_STR(e.msg, "arguments nest more than 512 arrays and objects "
                         "deep (the list itself is one)",
                  "the depth is named first");
    }
    p = base_params();
    p.ttl = -5;
    CHECK(build1(c, SIGNALR_OP_ADD_USER_TO_GROUP, &p, &e) == SIGNALR_EINVAL,
          "negative ttl");
    p = base_params();
    p.excluded = EXCL;
    p.excluded_count = 2;
    p.connection = NULL;
    CHECK(build1(c, SIGNALR_OP_SEND_TO_CONNECTION, &p, &e) == SIGNALR_EINVAL,
          "missing connection id");
    /* body over 1 MB */
    /* body = {"target":"newMessage","arguments":<args>}: 36 bytes + args */
    big = malloc(SIGNALR_MAX_BODY + 16);
    memset(big, 'a', SIGNALR_MAX_BODY + 16);
    big[0] = '[';
    big[1] = '"';
    big[SIGNALR_MAX_BODY - 38] = '"';
    big[SIGNALR_MAX_BODY - 37] = ']';
    p = base_params();
    p.arguments = big;
    p.arguments_len = SIGNALR_MAX_BODY - 36;
    CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_OK,
          "body of exactly 1 MB is fine");
    big[SIGNALR_MAX_BODY - 38] = 'a';
    big[SIGNALR_MAX_BODY - 37] = '"';
    big[SIGNALR_MAX_BODY - 36] = ']';
    p.arguments_len = SIGNALR_MAX_BODY - 35;
    CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_ETOOBIG,
          "body of 1 MB + 1 byte");
    CHECK(strstr(e.msg, "body is 1048577 bytes") != NULL, "size message");
    /* headers over 16 KB: many long exclusions */
    {
        const char *many[20];
        int i;

        memset(big, 'x', 1024);
        big[1024] = '\0';
        for (i = 0; i < 20; i++)
            many[i] = big;
        p = base_params();
        p.excluded = many;
        p.excluded_count = 20;
        CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_ETOOBIG,
              "headers over 16 KB");
        CHECK(strstr(e.msg, "16 KB") != NULL, "header message");
    }
    free(big);

    /* negotiate */
    CHECK(!signalr_client_negotiate(c, "Chat", "alice", "{\"role\":\"x\"}",
                                    600, NOW, &url, &tok, &e), "negotiate");
    CHECK_STR(url, "http://localhost:8888/client/?hub=chat", "client url");
    CHECK(!signalr_jwt_verify(tok, strlen(tok), (const unsigned char *)KEY,
                              strlen(KEY), NOW, &payload, NULL, &e),
          "client token verifies");
    CHECK(strstr(payload, "\"aud\":\"http://localhost/client/?hub=chat\"") !=
              NULL, "client aud");
    CHECK(strstr(payload, "\"exp\":1700000600") != NULL, "lifetime");
    CHECK(strstr(payload, "\"nameid\":\"alice\"") != NULL, "nameid");
    CHECK(strstr(payload, "\"asrs.s.uid\":\"alice\"") != NULL, "asrs.s.uid");
    CHECK(strstr(payload, "\"role\":\"x\"") != NULL, "extra claim");
    CHECK(!strstr(payload, "asrs.s.dc") && !strstr(payload, "asrs.s.derror"),
          "no flags: neither flag claim");
    signalr_free(payload);
    signalr_free(url);
    signalr_free(tok);
    /* the SDK's NegotiationOptions flags, as ClaimsUtility writes them */
    CHECK(!signalr_client_negotiate_with(c, "Chat", "alice", NULL,
                                         SIGNALR_NEGOTIATE_DIAGNOSTIC |
                                         SIGNALR_NEGOTIATE_DETAILED_ERRORS,
                                         600, NOW, &url, &tok, &e),
          "negotiate with flags");
    CHECK(!signalr_jwt_verify(tok, strlen(tok), (const unsigned char *)KEY,
                              strlen(KEY), NOW, &payload, NULL, &e),
          "flags: verifies");
    CHECK(strstr(payload, "\"asrs.s.dc\":\"true\"") != NULL, "asrs.s.dc");
    CHECK(strstr(payload, "\"asrs.s.derror\":\"True\"") != NULL,
          "asrs.s.derror");
    signalr_free(payload);
    signalr_free(url);
    signalr_free(tok);
    CHECK(!signalr_client_negotiate_with(c, "Chat", NULL, NULL,
                                         SIGNALR_NEGOTIATE_DETAILED_ERRORS,
                                         0, NOW, &url, &tok, &e),
          "one flag");
    CHECK(!signalr_jwt_verify(tok, strlen(tok), (const unsigned char *)KEY,
                              strlen(KEY), NOW, &payload, NULL, &e),
          "one flag: verifies");
    CHECK(!strstr(payload, "asrs.s.dc") &&
              strstr(payload, "\"asrs.s.derror\":\"True\""),
          "only detailed errors");
    signalr_free(payload);
    signalr_free(url);
    signalr_free(tok);
    CHECK(signalr_client_negotiate_with(c, "Chat", NULL,
                                        "{\"asrs.s.dc\":\"false\"}",
                                        SIGNALR_NEGOTIATE_DIAGNOSTIC, 0, NOW,
                                        &url, &tok, &e) == SIGNALR_EINVAL &&
              !url && !tok,
          "a custom claim repeating a flag's");
    CHECK_STR(e.msg, "claim 'asrs.s.dc' is set by negotiate from diagnostic",
              "its message");
    /* claim types the service reserves are renamed (ClaimsUtility) */
    CHECK(!signalr_client_negotiate(c, "Chat", NULL,
                                    "{\"aud\":\"x\",\"iss\":\"me\",\"jti\":1,"
                                    "\"nonce\":\"n\",\"acr\":\"a\",\"azp\":\"z\","
                                    "\"c_hash\":\"h\",\"actort\":\"t\","
                                    "\"exp\":5,\"nbf\":6,\"iat\":7,"
                                    "\"sub\":[\"s1\",\"s2\",\"s3\"],"
                                    "\"role\":[\"a\",\"b\"]}",
                                    0, NOW, &url, &tok, &e), "renamed claims");
    CHECK(!signalr_jwt_verify(tok, strlen(tok), (const unsigned char *)KEY,
                              strlen(KEY), NOW, &payload, NULL, &e),
          "renamed: verifies");
    {
        static const char *const want[] = {
            "\"asrs.u.aud\":\"x\"", "\"asrs.u.iss\":\"me\"",
            "\"asrs.u.jti\":1", "\"asrs.u.nonce\":\"n\"",
            "\"asrs.u.acr\":\"a\"", "\"asrs.u.azp\":\"z\"",
            "\"asrs.u.c_hash\":\"h\"", "\"asrs.u.actort\":\"t\"",
            "\"asrs.u.exp\":5", "\"asrs.u.nbf\":6", "\"asrs.u.iat\":7",
            "\"sub\":\"s1\"", "\"asrs.u.sub\":[\"s2\",\"s3\"]",
            "\"role\":[\"a\",\"b\"]", "\"aud\":\"http://localhost/client/",
            "\"exp\":1700003600"};
        size_t k;

        for (k = 0; k < sizeof(want) / sizeof(*want); k++)
            CHECK(payload && strstr(payload, want[k]), want[k]);
        CHECK(payload && !strstr(payload, "\"iss\""), "no raw iss");
    }
    signalr_free(payload);
    signalr_free(url);
    signalr_free(tok);
    /* repeated "sub" members: the first stays */
    CHECK(!signalr_client_negotiate(c, "Chat", NULL,
                                    "{\"sub\":\"a\",\"x\":1,\"sub\":\"b\"}", 0,
                                    NOW, &url, &tok, &e), "two subs");
    CHECK(!signalr_jwt_verify(tok, strlen(tok), (const unsigned char *)KEY,
                              strlen(KEY), NOW, &payload, NULL, &e),
          "two subs: verifies");
    CHECK(payload && strstr(payload, "\"sub\":\"a\",\"x\":1,\"asrs.u.sub\":\"b\""),
          "second sub renamed");
    signalr_free(payload);
    signalr_free(url);
    signalr_free(tok);
    CHECK(signalr_client_negotiate(c, "Chat", "alice", "{\"nameid\":\"x\"}",
                                   0, NOW, &url, &tok, &e) == SIGNALR_EINVAL &&
              !url && !tok, "nameid clashes with user_id");
    CHECK_STR(e.msg, "claim 'nameid' is set by negotiate from user_id",
              "nameid message");
    CHECK(!signalr_client_negotiate(c, "Chat", NULL, "{\"nameid\":\"bob\"}",
                                    0, NOW, &url, &tok, &e),
          "nameid without user_id names the user");
    signalr_free(url);
    signalr_free(tok);
    CHECK(signalr_client_negotiate(c, "Chat", "", NULL, 0, NOW, &url, &tok,
                                   &e) == SIGNALR_EINVAL, "empty user id");
    /* arguments must be one valid JSON array */
    {
        static const char *const bad[] = {"[1}", "[nan, undefined]",
                                          "[\"a\" \"b\"]", "[1,]", "{}"};
        size_t k;

        for (k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
            p = base_params();
            p.arguments = bad[k];
            p.arguments_len = strlen(bad[k]);
            CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL,
                  bad[k]);
        }
    }
    /* newer routes need a newer api_version */
    p = base_params();
    CHECK(build1(c, SIGNALR_OP_GENERATE_CLIENT_TOKEN, &p, &e) ==
              SIGNALR_EUNSUPPORTED, "generateToken on 2022-06-01");
    CHECK_STR(e.msg, "generate_client_token needs api_version 2022-11-01 or "
                     "later (the client uses 2022-06-01)", "since message");
    CHECK(build1(c, SIGNALR_OP_LIST_GROUP_CONNECTIONS, &p, &e) ==
              SIGNALR_EUNSUPPORTED, "listing on 2022-06-01");
    signalr_client_free(c);

    /* v1: the application goes into the hub segment; excluded is sent */
    memset(&o, 0, sizeof(o));
    o.api_version = "v1";
    o.application = "MyApp";
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "v1 app client");
    p = base_params();
    p.excluded = EXCL;
    p.excluded_count = 2;
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW, &r, &e),
          "v1 app broadcast");
    CHECK_STR(r.path, "/api/v1/hubs/myapp_chat?excluded=c%201&excluded=c2",
              "v1: app prefix in the path, excluded in the query");
    check_aud(&r, "/api/v1/hubs/myapp_chat");
    CHECK_STR(r.product_info, "lua-signalr/" SIGNALR_VERSION,
              "Asrs-User-Agent default");
    signalr_request_clear(&r);
    CHECK(!signalr_request_build(c, SIGNALR_OP_SEND_TO_GROUP, &p, NOW, &r,
                                 &e), "v1 group send with excluded");
    CHECK_STR(r.path, "/api/v1/hubs/myapp_chat/groups/g%20x"
                      "?excluded=c%201&excluded=c2", "v1 group excluded");
    signalr_request_clear(&r);
    CHECK(build1(c, SIGNALR_OP_GENERATE_CLIENT_TOKEN, &p, &e) ==
              SIGNALR_EUNSUPPORTED, "generateToken on v1");
    CHECK_STR(e.msg, "generate_client_token needs api_version 2022-11-01 or "
                     "later (the v1 REST API has no such route)",
              "v1 since message");
    signalr_client_free(c);

    /* 2024-12-01: generateToken and the paged group listing */
    memset(&o, 0, sizeof(o));
    o.api_version = "2024-12-01";
    o.application = "MyApp";
    o.product_info = "lua-signalr/9 (Lua 5.4; Linux)";
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "2024 client");
    p = base_params();
    p.minutes_to_expire = 5;
    CHECK(!signalr_request_build(c, SIGNALR_OP_GENERATE_CLIENT_TOKEN, &p, NOW,
                                 &r, &e), "generateToken");
    CHECK_STR(r.method, "POST", "generateToken method");
    CHECK_STR(r.path, "/api/hubs/myapp_chat/:generateToken"
                      "?api-version=2024-12-01&userId=u%2F1"
                      "&minutesToExpire=5", "generateToken: no application "
                                            "parameter, app in the hub");
    CHECK(r.body == NULL, "generateToken: no body");
    CHECK_STR(r.product_info, "lua-signalr/9 (Lua 5.4; Linux)",
              "product info");
    signalr_request_clear(&r);
    p.user = NULL;
    p.minutes_to_expire = 0;
    CHECK(!signalr_request_build(c, SIGNALR_OP_GENERATE_CLIENT_TOKEN, &p, NOW,
                                 &r, &e), "generateToken, no user");
    CHECK_STR(r.path, "/api/hubs/myapp_chat/:generateToken"
                      "?api-version=2024-12-01", "generateToken defaults");
    signalr_request_clear(&r);
    p.minutes_to_expire = -1;
    CHECK(build1(c, SIGNALR_OP_GENERATE_CLIENT_TOKEN, &p, &e) ==
              SIGNALR_EINVAL, "minutes < 0");
    p = base_params();
    p.top = 10;
    p.max_page_size = 2;
    p.continuation_token = "a b";
    CHECK(!signalr_request_build(c, SIGNALR_OP_LIST_GROUP_CONNECTIONS, &p,
                                 NOW, &r, &e), "listing");
    CHECK_STR(r.method, "GET", "listing method");
    CHECK_STR(r.path, "/api/hubs/chat/groups/g%20x/connections"
                      "?application=myapp&api-version=2024-12-01&top=10"
                      "&maxpagesize=2&continuationToken=a%20b", "listing");
    check_aud(&r, "/api/hubs/chat/groups/g%20x/connections");
    signalr_request_clear(&r);
    p.max_page_size = 201;
    CHECK(build1(c, SIGNALR_OP_LIST_GROUP_CONNECTIONS, &p, &e) ==
              SIGNALR_EINVAL, "page size over 200");
    CHECK_STR(e.msg, "max_page_size must be from 1 to 200", "page message");
    /* :execute: commands body, filter query, the app in the hub */
    p = base_params();
    p.commands = "[{\"type\":\"JoinGroup\",\"group\":\"g\"}]";
    p.commands_len = strlen(p.commands);
    p.filter = "userId eq 'a b'";
    CHECK(!signalr_request_build(c, SIGNALR_OP_EXECUTE, &p, NOW, &r, &e),
          "execute");
    CHECK_STR(r.path, "/api/hubs/myapp_chat/:execute?api-version=2024-12-01"
                      "&filter=userId%20eq%20%27a%20b%27", "execute path");
    CHECK_STR(r.body, p.commands, "execute body");
    CHECK(!r.idempotent, "execute is retried like a send");
    signalr_request_clear(&r);
    p.commands = "[1,]";
    p.commands_len = 4;
    CHECK(build1(c, SIGNALR_OP_EXECUTE, &p, &e) == SIGNALR_EINVAL,
          "execute: commands must be JSON");
    p = base_params();
    p.max_page_size = 0;
    p.group = "a\nb";
    CHECK(build1(c, SIGNALR_OP_LIST_GROUP_CONNECTIONS, &p, &e) ==
              SIGNALR_EINVAL, "group with a line break");
    signalr_client_free(c);

    /* client options */
    memset(&o, 0, sizeof(o));
    o.api_version = "2021-01-01";
    CHECK(signalr_client_new(CS, strlen(CS), &o, &c, &e) == SIGNALR_EINVAL,
          "api_version too old");
    o.api_version = "2024-12-01";
    o.application = "MyApp";
    o.user_agent = "game/1";
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "newer api");
    p = base_params();
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW, &r, &e),
          "app broadcast");
    CHECK_STR(r.path, "/api/hubs/chat/:send?application=myapp"
                      "&api-version=2024-12-01", "application query");
    CHECK_STR(r.user_agent, "game/1", "custom user agent");
    signalr_request_clear(&r);
    CHECK(!signalr_client_negotiate(c, "Chat", NULL, NULL, 0, NOW, &url,
                                    &tok, &e), "app negotiate");
    CHECK_STR(url, "http://localhost:8888/client/?hub=myapp_chat",
              "app-prefixed hub");
    signalr_free(url);
    signalr_free(tok);
    signalr_client_free(c);
    o.application = "my-app";
    CHECK(signalr_client_new(CS, strlen(CS), &o, &c, &e) == SIGNALR_EINVAL,
          "bad application");
    CHECK_STR(e.msg, "application name has an illegal character at position "
                     "3 (allowed: letters, digits and _`,.[])",
              "application message");
    /* Entra ID without a provider: a clear error, no request */
    CHECK(!signalr_client_new("Endpoint=https://h;AuthType=azure", 33, NULL,
                              &c, &e), "entra client");
    p = base_params();
    CHECK(build1(c, SIGNALR_OP_BROADCAST, &p, &e) == SIGNALR_EINVAL,
          "no token provider");
    CHECK_STR(e.msg, "AuthType=azure needs a token provider (no AccessKey "
                     "to sign with)", "provider message");
    p.bearer = "abc";
    CHECK(!signalr_request_build(c, SIGNALR_OP_BROADCAST, &p, NOW, &r, &e),
          "given bearer");
    CHECK_STR(r.authorization, "Bearer abc", "bearer passed through");
    CHECK(r.tls && r.port == 443, "https default port");
    signalr_request_clear(&r);
    signalr_client_free(c);
    signalr_client_free(NULL);
    return t_done("test_request");
}
