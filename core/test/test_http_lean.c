/* test_http_lean.c - the lean REST path: the request's bytes (known
 * answers), and the blocking transport against a scripted HTTP server in a
 * child process: keep-alive reuse, "Connection: close", a socket the
 * server closed while idle, a reused socket that dies after a send (EHTTP,
 * never sent twice) or after an idempotent call (written once more), a
 * timeout, a chunked error reply, and a reply that is not HTTP/1.x (then
 * the full libcurl path); the asynchronous transport's outcome carrying a
 * body, and one request canceled on the wire and before it was sent. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "curl_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ===== the request's bytes ===== */

static void wire_case(const char *what, signalr_request *r, const char *want)
{
    char *buf = NULL;
    size_t cap = 0, len = 0;

    CHECK(sr__http_wire(r, &buf, &cap, &len) == 0, what);
    CHECK(len <= cap, what);
    if (buf) {
        char *nb = realloc(buf, len + 1);

        if (nb)
            nb[len] = '\0';
        else
            free(buf);
        buf = nb;
    }
    CHECK_STR(buf, want, what);
    CHECK(strlen(want) == len, what);
    free(buf);
}

/* The public form: the same bytes in a buffer of their own. */
static void public_case(const char *what, signalr_request *r, const char *want)
{
    char *out = (char *)"x";
    size_t len = 1;
    signalr_error e;

    CHECK(signalr_request_wire(r, &out, &len, &e) == SIGNALR_OK, what);
    CHECK(out != NULL && len == strlen(want), what);
    CHECK(out && memcmp(out, want, len) == 0, what);
    signalr_free(out);
    CHECK(signalr_request_wire(NULL, &out, &len, &e) == SIGNALR_EINVAL, what);
    CHECK(out == NULL && len == 0, what);
}

static void test_wire(void)
{
    signalr_request r;

    memset(&r, 0, sizeof(r));
    r.op = SIGNALR_OP_BROADCAST;
    r.method = "POST";
    r.url = (char *)"http://localhost:8080/api/hubs/chat/:send?api-version="
                    "2022-06-01";
    r.host = (char *)"localhost";
    r.port = 8080;
    r.path = (char *)"/api/hubs/chat/:send?api-version=2022-06-01";
    r.authorization = (char *)"Bearer t.o.k";
    r.body = (char *)"{\"target\":\"m\",\"arguments\":[]}";
    r.body_len = strlen(r.body);
    r.content_type = "application/json; charset=utf-8";
    r.user_agent = "lua-signalr/0.2.0";
    r.product_info = "lua-signalr/0.2.0 (Lua)";
    wire_case("a send", &r,
              "POST /api/hubs/chat/:send?api-version=2022-06-01 HTTP/1.1\r\n"
              "Host: localhost:8080\r\n"
              "Authorization: Bearer t.o.k\r\n"
              "User-Agent: lua-signalr/0.2.0\r\n"
              "Asrs-User-Agent: lua-signalr/0.2.0 (Lua)\r\n"
              "Accept: */*\r\n"
              "Content-Type: application/json; charset=utf-8\r\n"
              "Content-Length: 29\r\n"
              "\r\n"
              "{\"target\":\"m\",\"arguments\":[]}");
    public_case("a send, signalr_request_wire", &r,
                "POST /api/hubs/chat/:send?api-version=2022-06-01 HTTP/1.1\r\n"
                "Host: localhost:8080\r\n"
                "Authorization: Bearer t.o.k\r\n"
                "User-Agent: lua-signalr/0.2.0\r\n"
                "Asrs-User-Agent: lua-signalr/0.2.0 (Lua)\r\n"
                "Accept: */*\r\n"
                "Content-Type: application/json; charset=utf-8\r\n"
                "Content-Length: 29\r\n"
                "\r\n"
                "{\"target\":\"m\",\"arguments\":[]}");

    r.method = "HEAD";
    r.url = (char *)"https://x.service.signalr.net/api/hubs/chat/users/u";
    r.host = (char *)"x.service.signalr.net";
    r.port = 443;
    r.tls = 1;
    r.body = NULL;
    r.body_len = 0;
    r.content_type = NULL;
    r.product_info = NULL;
    wire_case("HEAD: no length, the default port left out", &r,
              "HEAD /api/hubs/chat/users/u HTTP/1.1\r\n"
              "Host: x.service.signalr.net\r\n"
              "Authorization: Bearer t.o.k\r\n"
              "User-Agent: lua-signalr/0.2.0\r\n"
              "Accept: */*\r\n"
              "\r\n");

    r.method = "DELETE";
    wire_case("DELETE without a body: Content-Length 0", &r,
              "DELETE /api/hubs/chat/users/u HTTP/1.1\r\n"
              "Host: x.service.signalr.net\r\n"
              "Authorization: Bearer t.o.k\r\n"
              "User-Agent: lua-signalr/0.2.0\r\n"
              "Accept: */*\r\n"
              "Content-Length: 0\r\n"
              "\r\n");

    r.method = "GET";
    r.url = (char *)"http://[::1]:80/prefix/api/health?x=1";
    r.host = (char *)"::1";
    r.port = 80;
    r.tls = 0;
    r.authorization = NULL;
    r.headers = (char *)"X-A: 1\r\nX-B: two\r\n";
    wire_case("an IPv6 host, a path the endpoint carries, extra lines", &r,
              "GET /prefix/api/health?x=1 HTTP/1.1\r\n"
              "Host: [::1]\r\n"
              "User-Agent: lua-signalr/0.2.0\r\n"
              "Accept: */*\r\n"
              "X-A: 1\r\nX-B: two\r\n"
              "\r\n");
}

/* ===== a scripted server ===== */

enum { A_REPLY = 1, A_REPLY_CLOSE, A_CLOSE, A_SILENT };

typedef struct {
    int action;
    const char *reply;
} step;

#define OK202 "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
#define MAXC 8

/* Serve the script on ls: each request read whole gets the next step.
 * Logs "conn <i> <method> <third line's name>\n" per request to logfd. */
static void serve(int ls, const step *script, int n, int logfd)
{
    struct {
        int fd;
        char buf[8192];
        size_t len;
    } c[MAXC];
    int nc = 0, next = 0, conns = 0, i;
    int ids[MAXC];

    for (;;) {
        struct pollfd p[MAXC + 1];

        memset(p, 0, sizeof(p)); /* one accepted below was not polled */
        p[0].fd = ls;
        p[0].events = POLLIN;
        for (i = 0; i < nc; i++) {
            p[i + 1].fd = c[i].fd;
            p[i + 1].events = POLLIN;
        }
        if (poll(p, (nfds_t)nc + 1, -1) < 0)
            _exit(1);
        if ((p[0].revents & POLLIN) && nc < MAXC) {
            c[nc].fd = accept(ls, NULL, NULL);
            c[nc].len = 0;
            ids[nc] = conns++;
            nc++;
        }
        for (i = 0; i < nc; i++) {
            ssize_t r;
            char *end, *cl, *l2, *l3;
            size_t need, body = 0;
            char line[160];

            if (!(p[i + 1].revents & (POLLIN | POLLHUP)))
                continue;
            r = read(c[i].fd, c[i].buf + c[i].len,
                     sizeof(c[i].buf) - 1 - c[i].len);
            if (r <= 0) {
                close(c[i].fd);
                c[i] = c[--nc];
                ids[i] = ids[nc];
                p[i + 1] = p[nc + 1];
                i--;
                continue;
            }
            c[i].len += (size_t)r;
            c[i].buf[c[i].len] = '\0';
            end = strstr(c[i].buf, "\r\n\r\n");
            if (!end)
                continue;
            cl = strstr(c[i].buf, "Content-Length: ");
            if (cl && cl < end)
                body = (size_t)atol(cl + 16);
            need = (size_t)(end + 4 - c[i].buf) + body;
            if (c[i].len < need)
                continue;
            l2 = strstr(c[i].buf, "\r\n") + 2;
            l3 = strstr(l2, "\r\n") + 2;
            snprintf(line, sizeof(line), "conn %d %.*s %.*s\n", ids[i],
                     (int)strcspn(c[i].buf, " "), c[i].buf,
                     (int)strcspn(l3, ":"), l3);
            if (write(logfd, line, strlen(line)) < 0)
                _exit(1);
            memmove(c[i].buf, c[i].buf + need, c[i].len - need);
            c[i].len -= need;
            if (next >= n)
                _exit(0);
            switch (script[next].action) {
            case A_REPLY:
            case A_REPLY_CLOSE:
                if (write(c[i].fd, script[next].reply,
                          strlen(script[next].reply)) < 0)
                    _exit(1);
                break;
            case A_SILENT:
                sleep(5);
                _exit(0);
            default:
                break;
            }
            if (script[next].action == A_REPLY_CLOSE ||
                script[next].action == A_CLOSE) {
                close(c[i].fd);
                c[i] = c[--nc];
                ids[i] = ids[nc];
                p[i + 1] = p[nc + 1];
                i--;
            }
            next++;
        }
    }
}

typedef struct {
    pid_t pid;
    int port, logfd;
} server;

static int start_server(server *s, const step *script, int n)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int ls = socket(AF_INET, SOCK_STREAM, 0), pfd[2], one = 1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) ||
        listen(ls, 16) || getsockname(ls, (struct sockaddr *)&a, &al) ||
        pipe(pfd))
        return -1;
    s->port = ntohs(a.sin_port);
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (!s->pid) {
        close(pfd[0]);
        serve(ls, script, n, pfd[1]);
        _exit(0);
    }
    close(ls);
    close(pfd[1]);
    s->logfd = pfd[0];
    return 0;
}

/* Stop the server; its log into buf. */
static void stop_server(server *s, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t r;

    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    while (len + 1 < cap &&
           (r = read(s->logfd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(s->logfd);
}

static char url[128], host[] = "127.0.0.1", path[] = "/api/hubs/chat/:send";
static char auth[] = "Bearer t", body[] = "{\"target\":\"m\",\"arguments\":[]}";

static void make_req(signalr_request *r, const server *s, int idempotent)
{
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
    r->op = idempotent ? SIGNALR_OP_USER_IN_GROUP : SIGNALR_OP_BROADCAST;
    r->method = idempotent ? "HEAD" : "POST";
    r->url = url;
    r->host = host;
    r->port = s->port;
    r->path = path;
    r->authorization = auth;
    r->idempotent = idempotent;
    r->user_agent = "t/1";
    if (!idempotent) {
        r->body = body;
        r->body_len = strlen(body);
        r->content_type = "application/json";
    }
}

static void sleep_ms(long ms)
{
    struct timespec t;

    t.tv_sec = ms / 1000;
    t.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&t, NULL);
}

typedef struct {
    const char *name;
    step script[4];
    int nscript;
    int idempotent;
    long pause_ms;             /* between the calls */
    long timeout_ms;
    int calls;
    signalr_err want[3];       /* each call's result */
    int want_status[3];
    const char *want_msg;      /* in the last failure's message */
    const char *want_log;      /* the server's log */
} scenario;

static const scenario SCENARIOS[] = {
    {"keep-alive: two requests, one connection",
     {{A_REPLY, OK202}, {A_REPLY, OK202}}, 2, 0, 0, 1000, 2,
     {SIGNALR_OK, SIGNALR_OK}, {202, 202}, NULL,
     "conn 0 POST Authorization\nconn 0 POST Authorization\n"},
    {"Connection: close: the next request opens another",
     {{A_REPLY_CLOSE, "HTTP/1.1 202 A\r\nConnection: close\r\n"
                      "Content-Length: 0\r\n\r\n"}, {A_REPLY, OK202}}, 2, 0,
     0, 1000, 2, {SIGNALR_OK, SIGNALR_OK}, {202, 202}, NULL,
     "conn 0 POST Authorization\nconn 1 POST Authorization\n"},
    {"closed while idle: seen before reuse, no error",
     {{A_REPLY_CLOSE, OK202}, {A_REPLY, OK202}}, 2, 0, 50, 1000, 2,
     {SIGNALR_OK, SIGNALR_OK}, {202, 202}, NULL,
     "conn 0 POST Authorization\nconn 1 POST Authorization\n"},
    {"a send on a reused socket that dies: EHTTP, not sent again",
     {{A_REPLY, OK202}, {A_CLOSE, NULL}, {A_REPLY, OK202}}, 3, 0, 0, 1000,
     2, {SIGNALR_OK, SIGNALR_EHTTP}, {202, 0}, "may have been delivered",
     "conn 0 POST Authorization\nconn 0 POST Authorization\n"},
    {"an idempotent call on a reused socket that dies: written again",
     {{A_REPLY, OK202}, {A_CLOSE, NULL}, {A_REPLY, OK202}}, 3, 1, 0, 1000,
     2, {SIGNALR_OK, SIGNALR_OK}, {202, 202}, NULL,
     "conn 0 HEAD Authorization\nconn 0 HEAD Authorization\n"
     "conn 1 HEAD Authorization\n"},
    {"no reply within the timeout: ETIMEDOUT",
     {{A_SILENT, NULL}}, 1, 0, 0, 300, 1, {SIGNALR_ETIMEDOUT}, {0},
     "timed out", "conn 0 POST Authorization\n"},
    {"a chunked error reply",
     {{A_REPLY, "HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\n"
                "x-ms-error-code: Quota\r\nTransfer-Encoding: chunked\r\n"
                "\r\n4\r\nslow\r\n0\r\n\r\n"}, {A_REPLY, OK202}}, 2, 0, 0,
     1000, 2, {SIGNALR_OK, SIGNALR_OK}, {429, 202}, NULL,
     "conn 0 POST Authorization\nconn 0 POST Authorization\n"},
    {"not HTTP/1.x: EHTTP, then the full libcurl path",
     {{A_REPLY_CLOSE, "HTTP/2 200\r\n\r\n"}, {A_REPLY, OK202}}, 2, 0, 0,
     1000, 2, {SIGNALR_EHTTP, SIGNALR_OK}, {0, 202}, "malformed reply",
     "conn 0 POST Authorization\nconn 1 POST User-Agent\n"},
};

static void run_scenario(const scenario *sc)
{
    server s;
    signalr_http *h = NULL;
    signalr_http_options o = {0, 0, 1, NULL, NULL, NULL, NULL};
    signalr_request r;
    signalr_http_reply rep;
    signalr_error e;
    char log[2048], last[sizeof(e.msg)] = "";
    int i;

    if (start_server(&s, sc->script, sc->nscript)) {
        CHECK(0, "the server starts");
        return;
    }
    o.timeout_ms = sc->timeout_ms;
    CHECK(signalr_http_new(&h, &e) == SIGNALR_OK, sc->name);
    make_req(&r, &s, sc->idempotent);
    for (i = 0; i < sc->calls; i++) {
        signalr_err rc = signalr_http_perform(h, &r, &o, &rep, &e);

        CHECK(rc == sc->want[i], sc->name);
        if (rc != sc->want[i])
            fprintf(stderr, "  call %d: %s %s\n", i + 1, signalr_err_name(rc),
                    e.msg);
        if (!rc)
            CHECK(rep.status == sc->want_status[i], sc->name);
        else
            snprintf(last, sizeof(last), "%s", e.msg);
        if (rc == SIGNALR_EHTTP || rc == SIGNALR_ETIMEDOUT)
            CHECK(e.sent == 1, sc->name);
        if (!rc && rep.status == 429) {
            CHECK(rep.retry_after_s == 3, sc->name);
            CHECK_STR(rep.error_code, "Quota", sc->name);
            CHECK(rep.body_len == 4 && !memcmp(rep.body, "slow", 4),
                  sc->name);
        }
        if (sc->pause_ms)
            sleep_ms(sc->pause_ms);
    }
    if (sc->want_msg)
        CHECK(strstr(last, sc->want_msg) != NULL, sc->name);
    if (sc->want_msg && !strstr(last, sc->want_msg))
        fprintf(stderr, "  message: %s\n", last);
    signalr_http_free(h);
    stop_server(&s, log, sizeof(log));
    CHECK_STR(log, sc->want_log, sc->name);
}

/* ===== the asynchronous transport: bodies and per-request cancel ===== */

/* Step m until it holds an outcome (at most ~3 s); 1 when *o was filled. */
static int next_outcome(signalr_multi *m, signalr_outcome *o)
{
    signalr_error e;
    int i;

    for (i = 0; i < 300; i++) {
        if (signalr_multi_next(m, o))
            return 1;
        signalr_multi_step(m, 10, &e);
    }
    return signalr_multi_next(m, o);
}

static void test_multi(void)
{
    static const step script[] = {
        {A_REPLY, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  "Content-Length: 12\r\n\r\n{\"value\":[]}"},
        {A_SILENT, NULL}};
    signalr_client_options co;
    signalr_client *c = NULL;
    signalr_multi *m = NULL;
    signalr_params p;
    signalr_outcome o;
    signalr_error e;
    unsigned long id1 = 0, id2 = 0;
    char cs[160], log[512];
    server s;
    int i;

    if (start_server(&s, script, 2)) {
        CHECK(0, "the server starts");
        return;
    }
    snprintf(cs, sizeof(cs), "Endpoint=http://127.0.0.1;Port=%d;AccessKey="
             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;",
             s.port);
    memset(&co, 0, sizeof(co));
    co.api_version = "2024-12-01";
    CHECK(signalr_client_new(cs, strlen(cs), &co, &c, &e) == SIGNALR_OK,
          "a client");
    CHECK(signalr_multi_new(c, NULL, NULL, 0, 1, &m, &e) == SIGNALR_OK,
          "a multi");
    memset(&p, 0, sizeof(p));
    p.hub = "chat";
    p.group = "g";
    p.ttl = SIGNALR_TTL_NONE;
    CHECK(signalr_multi_submit(m, SIGNALR_OP_LIST_GROUP_CONNECTIONS, &p, &id1,
                               &e) == SIGNALR_OK,
          "an operation that answers with data is queued");
    CHECK(next_outcome(m, &o), "its outcome");
    CHECK(o.id == id1 && o.rc == SIGNALR_OK, "it succeeded");
    CHECK(o.status == 200, "its status");
    CHECK(o.body && o.body_len == 12 && !strcmp(o.body, "{\"value\":[]}"),
          "its body is in the outcome");
    signalr_free(o.body);
    /* a send the server never answers: canceled on the wire */
    p.target = "m";
    CHECK(signalr_multi_submit(m, SIGNALR_OP_BROADCAST, &p, &id2, &e) ==
          SIGNALR_OK, "a send");
    for (i = 0; i < 20; i++) /* connected and written by then */
        signalr_multi_step(m, 10, &e);
    CHECK(signalr_multi_cancel_one(m, id2 + 1) == 0, "an unknown id: 0");
    CHECK(signalr_multi_cancel_one(m, id2) == 1, "canceled");
    CHECK(signalr_multi_cancel_one(m, id2) == 0, "once");
    CHECK(signalr_multi_next(m, &o), "its outcome is there at once");
    CHECK(o.id == id2 && o.rc == SIGNALR_ECANCELED, "ECANCELED");
    CHECK(o.err.sent == 1, "it had gone out");
    CHECK(strstr(o.err.msg, "req:cancel() after the request was sent") !=
          NULL, o.err.msg);
    CHECK(!o.body, "no body");
    CHECK(signalr_multi_pending(m) == 0, "nothing left");
    /* queued behind nothing, canceled before it goes: not sent */
    CHECK(signalr_multi_submit(m, SIGNALR_OP_BROADCAST, &p, &id1, &e) ==
          SIGNALR_OK, "another send");
    CHECK(signalr_multi_cancel_one(m, id1) == 1, "canceled at once");
    CHECK(signalr_multi_next(m, &o) && o.rc == SIGNALR_ECANCELED &&
          o.err.sent == 0, "before it was sent");
    signalr_multi_free(m);
    signalr_client_free(c);
    stop_server(&s, log, sizeof(log));
}

int main(void)
{
    size_t i;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    unsetenv("SIGNALR_LEAN");
    test_wire();
    test_multi();
    for (i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); i++)
        run_scenario(&SCENARIOS[i]);
    /* a proxy in the environment: the full path (its head shows it) */
    {
        static const scenario proxied = {
            "a proxy in the environment: the full libcurl path",
            {{A_REPLY, OK202}}, 1, 0, 0, 1000, 1, {SIGNALR_OK}, {202},
            NULL, "conn 0 POST User-Agent\n"};

        /* 127.0.0.1 is excluded from it: libcurl then goes straight */
        setenv("http_proxy", "http://127.0.0.1:9", 1);
        setenv("no_proxy", "127.0.0.1", 1);
        run_scenario(&proxied);
        unsetenv("http_proxy");
        setenv("SIGNALR_LEAN", "0", 1);
        run_scenario(&proxied);
        unsetenv("SIGNALR_LEAN");
    }
    curl_global_cleanup();
    return t_done("test_http_lean");
}
