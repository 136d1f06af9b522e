/* http_lean.c - the lean REST path: keep-alive sockets that libcurl opens
 * (CURLOPT_CONNECT_ONLY: DNS, TCP, TLS and its certificate checks stay
 * libcurl's) and that our code then drives: the request written as one
 * buffer with curl_easy_send, the reply read with curl_easy_recv into the
 * core's own reader (http_reply.c); on plain TCP (no TLS), send and recv
 * on the socket libcurl opened instead (conn_send, conn_recv).  The blocking transport (http_curl.c)
 * and the multi transport (http_multi.c) both use it.
 *
 * Which requests take it, decided per request before any byte is written
 * (sr__lean_eligible and the open-time check below):
 *   - SignalR operations (signalr_request_build): one shape, one host, a
 *     Content-Length body, an HTTP/1.1 reply; this is the hot path.
 *   - NOT identity requests (signalr_request_http: op SIGNALR_OP_MAX):
 *     arbitrary hosts, headers and bodies the caller reads, a few per
 *     hour; they keep the full libcurl path.
 *   - NOT when libcurl would use a proxy: when a connection is to be
 *     opened and the options name one (signalr_http_options.proxy), or
 *     any of http_proxy, HTTP_PROXY, https_proxy, HTTPS_PROXY,
 *     all_proxy or ALL_PROXY is set (NO_PROXY is not weighed: the full
 *     path decides), that request goes the full libcurl path, which
 *     handles proxies, their authentication and tunnels.
 *   - NOT after a host answered with something that is not HTTP/1.x (an
 *     HTTP/2-only front end, a 101): from then on that handle sends to it
 *     on the full libcurl path.  The lean connections offer only
 *     http/1.1 in ALPN, so a TLS server that speaks both picks 1.1.
 *   - NOT when the environment variable SIGNALR_LEAN is "0" when a
 *     connection is to be opened (a diagnostic switch).
 * Redirects need no fallback: neither path follows them (a 3xx is the
 * reply).  Whatever takes the full path gets the same outcomes.
 *
 * The rule that no send is made twice behind the caller's back
 * (README, "Retries"): a request is written again on a fresh connection
 * only when provably nothing of it was delivered (not one byte of it left
 * this process), or when it is idempotent and a reused connection died
 * before any byte of a reply (what libcurl does).  A send whose reused
 * connection died after it was written fails with EHTTP, details.sent.
 *
 * Caveats: idle connections are checked before reuse (a peek at the
 * socket: closed, reset, or bytes nobody asked for mean dead); a server
 * that closes a connection just after that check makes a send fail with
 * EHTTP, as on the full path. */
#define _POSIX_C_SOURCE 200809L
#include "curl_common.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ===== the request as bytes ===== */

static char *put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

#define PUTS(d, lit) put((d), (lit), sizeof(lit) - 1)

/* v in decimal into d (room for 20 digits); returns the length (no
 * snprintf on the hot path). */
static size_t utoa(char *d, unsigned long long v)
{
    char t[20];
    size_t n = 0, i;

    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        d[i] = t[n - 1 - i];
    return n;
}

int sr__http_wire(const signalr_request *req, char **buf, size_t *cap,
                  size_t *len)
{
    const char *target = NULL, *s;
    size_t need, tlen, ml = strlen(req->method), hl = strlen(req->host);
    size_t al = req->authorization ? strlen(req->authorization) : 0;
    size_t ul = req->user_agent ? strlen(req->user_agent) : 0;
    size_t pl = req->product_info ? strlen(req->product_info) : 0;
    size_t cl = req->content_type ? strlen(req->content_type) : 0;
    size_t xl = req->headers ? strlen(req->headers) : 0;
    int v6 = strchr(req->host, ':') != NULL;
    int port = (req->tls && req->port != 443) || (!req->tls && req->port != 80);
    int has_len = strcmp(req->method, "GET") && strcmp(req->method, "HEAD");
    char num[24], pnum[24];
    size_t nl = 0, pnl = 0;
    char *d;

    /* the target as the URL has it: whatever path the endpoint carries */
    s = strstr(req->url, "://");
    if (s)
        target = strchr(s + 3, '/');
    if (!target)
        target = "/";
    tlen = strlen(target);
    if (has_len)
        nl = utoa(num, req->body_len);
    if (port) {
        pnum[0] = ':';
        pnl = 1 + utoa(pnum + 1, req->port > 0 ? (unsigned)req->port : 0);
    }
    need = ml + 1 + tlen + 11 + 6 + hl + 2 * v6 + pnl + 2 +
           (al ? 15 + al + 2 : 0) + (ul ? 12 + ul + 2 : 0) +
           (pl ? 17 + pl + 2 : 0) + 13 + (cl ? 14 + cl + 2 : 0) +
           (has_len ? 16 + nl + 2 : 0) + xl + 2 + req->body_len;
    if (need > *cap) {
        char *nb = realloc(*buf, need);

        if (!nb)
            return -1;
        *buf = nb;
        *cap = need;
    }
    d = *buf;
    d = put(d, req->method, ml);
    *d++ = ' ';
    d = put(d, target, tlen);
    d = PUTS(d, " HTTP/1.1\r\nHost: ");
    if (v6)
        *d++ = '[';
    d = put(d, req->host, hl);
    if (v6)
        *d++ = ']';
    d = put(d, pnum, pnl);
    d = PUTS(d, "\r\n");
    if (al) {
        d = PUTS(d, "Authorization: ");
        d = put(d, req->authorization, al);
        d = PUTS(d, "\r\n");
    }
    if (ul) {
        d = PUTS(d, "User-Agent: ");
        d = put(d, req->user_agent, ul);
        d = PUTS(d, "\r\n");
    }
    if (pl) {
        d = PUTS(d, "Asrs-User-Agent: ");
        d = put(d, req->product_info, pl);
        d = PUTS(d, "\r\n");
    }
    d = PUTS(d, "Accept: */*\r\n");
    if (cl) {
        d = PUTS(d, "Content-Type: ");
        d = put(d, req->content_type, cl);
        d = PUTS(d, "\r\n");
    }
    if (has_len) {
        d = PUTS(d, "Content-Length: ");
        d = put(d, num, nl);
        d = PUTS(d, "\r\n");
    }
    d = put(d, req->headers ? req->headers : "", xl);
    d = PUTS(d, "\r\n");
    if (req->body_len)
        d = put(d, req->body, req->body_len);
    *len = (size_t)(d - *buf);
    return 0;
}

signalr_err signalr_request_wire(const signalr_request *r, char **out,
                                 size_t *len, signalr_error *err)
{
    size_t cap = 0;

    sr__ok(err);
    if (!out || !len)
        return sr__fail(err, SIGNALR_EINVAL, "missing output");
    *out = NULL;
    *len = 0;
    if (!r || !r->method || !r->host || !r->url)
        return sr__fail(err, SIGNALR_EINVAL, "missing request");
    if (sr__http_wire(r, out, &cap, len)) {
        free(*out);
        *out = NULL;
        *len = 0;
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    return SIGNALR_OK;
}

/* ===== which requests ===== */

int sr__lean_eligible(const signalr_request *req)
{
    return req->op != SIGNALR_OP_MAX && req->host && req->url && req->path;
}

/* 1 when a connection about to be opened must not be a lean one. */
int sr__lean_refused(const signalr_http_options *o)
{
    static const char *const vars[] = {"http_proxy", "HTTP_PROXY",
                                       "https_proxy", "HTTPS_PROXY",
                                       "all_proxy", "ALL_PROXY"};
    const char *v = getenv("SIGNALR_LEAN");
    size_t i;

    if (v && !strcmp(v, "0"))
        return 1;
    if (o && o->proxy && *o->proxy)
        return 1;
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        v = getenv(vars[i]);
        if (v && *v)
            return 1;
    }
    return 0;
}

/* ===== connections ===== */

void sr__conn_free(sr__conn *c)
{
    if (!c)
        return;
    if (c->multi && c->curl)
        curl_multi_remove_handle(c->multi, c->curl);
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    sr__hr_free(&c->rep);
    free(c->out);
    free(c->host);
    free(c->ca_file);
    free(c);
}

/* A new connection's easy handle, set up to connect only. */
static CURL *connect_handle(sr__conn *c, const signalr_request *req,
                            const signalr_http_options *o, CURLSH *share,
                            long conn_timeout, long timeout)
{
    CURL *e = curl_easy_init();

    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* we speak HTTP/1.1 on it: ALPN offers only that */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* checked: none wanted */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conn_timeout);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->verify_tls ? 2L : 0L);
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    /* libcurl reads nothing through its own buffer on this handle (we
     * read into ours): the smallest it allows, not 16 KiB a connection */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    if (share)
        curl_easy_setopt(e, CURLOPT_SHARE, share);
    return e;
}

static sr__conn *conn_alloc(const signalr_request *req,
                            const signalr_http_options *o)
{
    sr__conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->fd = CURL_SOCKET_BAD;
    c->port = req->port;
    c->tls = req->tls;
    c->verify = o->verify_tls;
    c->host = sr__strdup(req->host);
    c->ca_file = o->ca_file ? sr__strdup(o->ca_file) : NULL;
    if (!c->host || (o->ca_file && !c->ca_file)) {
        sr__conn_free(c);
        return NULL;
    }
    return c;
}

signalr_err sr__conn_open(const signalr_request *req,
                          const signalr_http_options *o, CURLSH *share,
                          long conn_timeout, long timeout, sr__conn **out,
                          signalr_error *err)
{
    sr__conn *c = conn_alloc(req, o);
    CURLcode cc;

    *out = NULL;
    if (!c || !(c->curl = connect_handle(c, req, o, share, conn_timeout,
                                         timeout))) {
        sr__conn_free(c);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    cc = curl_easy_perform(c->curl);
    if (cc == CURLE_OK &&
        (curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &c->fd) ||
         c->fd == CURL_SOCKET_BAD))
        cc = CURLE_COULDNT_CONNECT;
    if (cc != CURLE_OK) {
        signalr_err rc = sr__curl_fail(cc, c->errbuf, 0, err);

        sr__conn_free(c);
        return rc;
    }
    c->state = SR__CONN_IDLE;
    c->idle_since = sr__now_ms();
    *out = c;
    return SIGNALR_OK;
}

/* ===== connecting without blocking (the multi transport) ===== */

static int conn_sock_cb(CURL *e, curl_socket_t fd, int what, void *ud,
                        void *sp)
{
    sr__conn *c = ud;
    int i, ev = what == CURL_POLL_REMOVE ? 0
                : (what & CURL_POLL_IN ? 1 : 0) |
                  (what & CURL_POLL_OUT ? 2 : 0);

    (void)e;
    (void)sp;
    for (i = 0; i < c->ncfds && c->cfds[i] != fd; i++)
        ;
    if (!ev) {
        if (i < c->ncfds) {
            c->cfds[i] = c->cfds[c->ncfds - 1];
            c->cwhat[i] = c->cwhat[c->ncfds - 1];
            c->ncfds--;
        }
    } else {
        if (i == c->ncfds) {
            if (c->ncfds == SR__CONN_FDS)
                return -1; /* libcurl fails the connect */
            c->ncfds++;
        }
        c->cfds[i] = fd;
        c->cwhat[i] = ev;
    }
    if (c->watch && c->watch(c, fd, ev))
        return -1;
    return 0;
}

static int conn_timer_cb(CURLM *m, long timeout_ms, void *ud)
{
    sr__conn *c = ud;

    (void)m;
    c->ctimer_due = timeout_ms < 0 ? -1 : sr__now_ms() + timeout_ms;
    return 0;
}

signalr_err sr__conn_start(const signalr_request *req,
                           const signalr_http_options *o, CURLSH *share,
                           long conn_timeout, long timeout,
                           int (*watch)(sr__conn *, curl_socket_t, int),
                           void *owner, sr__conn **out, signalr_error *err)
{
    sr__conn *c = conn_alloc(req, o);

    *out = NULL;
    if (!c)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    c->owner = owner;
    c->watch = watch;
    c->ctimer_due = -1;
    c->state = SR__CONN_CONNECTING;
    c->curl = connect_handle(c, req, o, share, conn_timeout, timeout);
    c->multi = c->curl ? curl_multi_init() : NULL;
    if (!c->multi) {
        sr__conn_free(c);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, conn_sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, conn_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    if (curl_multi_add_handle(c->multi, c->curl) != CURLM_OK) {
        sr__conn_free(c);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    *out = c;
    return SIGNALR_OK;
}

int sr__conn_connect_step(sr__conn *c, int timer, signalr_error *err)
{
    curl_socket_t fds[SR__CONN_FDS];
    int n = c->ncfds, i, running = 0, left = 0;
    CURLMsg *msg;

    memcpy(fds, c->cfds, sizeof(fds));
    if (timer || n == 0) {
        c->ctimer_due = -1;
        curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    } else {
        /* which of its sockets woke us is not known here: libcurl looks */
        for (i = 0; i < n; i++)
            curl_multi_socket_action(c->multi, fds[i], 0, &running);
    }
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        CURLcode cc;

        if (msg->msg != CURLMSG_DONE)
            continue;
        cc = msg->data.result;
        if (cc == CURLE_OK &&
            (curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &c->fd) ||
             c->fd == CURL_SOCKET_BAD))
            cc = CURLE_COULDNT_CONNECT;
        if (cc != CURLE_OK) {
            sr__curl_fail(cc, c->errbuf, 0, err);
            c->state = SR__CONN_DEAD;
            return -1;
        }
        c->state = SR__CONN_IDLE;
        c->idle_since = sr__now_ms();
        return 1;
    }
    return 0;
}

/* ===== one exchange ===== */

/* An idle socket is peeked at before reuse once it has been idle this
 * long (see sr__conn_alive). */
#define SR__PEEK_AFTER_MS 2

int sr__conn_alive(sr__conn *c, int look)
{
    char b;
    ssize_t r;

    if (c->state != SR__CONN_IDLE || c->fd == CURL_SOCKET_BAD)
        return 0;
    /* A reply that was just read whole, without "Connection: close": a
     * server ends such a connection after an idle timeout of seconds, not
     * within milliseconds, so a socket reused at once (back-to-back
     * sends) is not looked at; any other is (a reload or restart closes
     * idle sockets at any time: what has arrived by now is seen). */
    if (!look && sr__now_ms() - c->idle_since < SR__PEEK_AFTER_MS)
        return 1;
    r = recv(c->fd, &b, 1, MSG_PEEK);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (r == 0 || !c->tls)
        return 0; /* closed, or bytes nobody asked for */
    {
        /* TLS: a record after the handshake (a session ticket) is fine;
         * application bytes or a close are not */
        char buf[256];
        size_t n = 0;
        CURLcode cc = curl_easy_recv(c->curl, buf, sizeof(buf), &n);

        return cc == CURLE_AGAIN;
    }
}

signalr_err sr__conn_begin(sr__conn *c, const signalr_request *req,
                           size_t keep, signalr_error *err)
{
    if (sr__http_wire(req, &c->out, &c->out_cap, &c->out_len))
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    c->out_pos = 0;
    c->reused = c->exchanges > 0;
    c->state = SR__CONN_BUSY;
    c->cc = CURLE_OK;
    c->errbuf[0] = '\0';
    sr__hr_init(&c->rep, keep, !strcmp(req->method, "HEAD"));
    return SIGNALR_OK;
}

/* Plain TCP connections (no TLS) are written and read with send and
 * recv on the socket libcurl opened: what curl_easy_send/recv do there,
 * without their bookkeeping (about a tenth of a send's instructions).
 * TLS connections go through libcurl, which owns the TLS session.  Both
 * answer as curl_easy_send/recv do: CURLE_AGAIN, a failure (c->errbuf
 * says why, as libcurl words it), or bytes moved (0 read: closed). */
/* c->errbuf: what failed and the system's words for errno e, as
 * libcurl words it ("Send failure: Connection reset by peer"). */
static void sys_error(sr__conn *c, const char *what, int e)
{
    char text[128];

    if (strerror_r(e, text, sizeof(text)))
        snprintf(text, sizeof(text), "error %d", e);
    snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", what, text);
}

static CURLcode conn_send(sr__conn *c, const char *p, size_t len, size_t *n)
{
    ssize_t r;

    if (c->tls)
        return curl_easy_send(c->curl, p, len, n);
    do
        r = send(c->fd, p, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
        *n = (size_t)r;
        return CURLE_OK;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return CURLE_AGAIN;
    sys_error(c, "Send failure", errno);
    return CURLE_SEND_ERROR;
}

static CURLcode conn_recv(sr__conn *c, char *p, size_t len, size_t *n)
{
    ssize_t r;

    if (c->tls)
        return curl_easy_recv(c->curl, p, len, n);
    do
        r = recv(c->fd, p, len, 0);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
        *n = (size_t)r;
        return CURLE_OK;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return CURLE_AGAIN;
    sys_error(c, "Recv failure", errno);
    return CURLE_RECV_ERROR;
}

int sr__conn_write(sr__conn *c)
{
    while (c->out_pos < c->out_len) {
        size_t n = 0;
        CURLcode cc = conn_send(c, c->out + c->out_pos,
                                c->out_len - c->out_pos, &n);

        if (cc == CURLE_AGAIN)
            return 0;
        if (cc != CURLE_OK) {
            c->cc = cc;
            return -1;
        }
        c->out_pos += n;
    }
    return 1;
}

int sr__conn_read(sr__conn *c)
{
    char buf[16384];

    for (;;) {
        size_t n = 0, used = 0;
        CURLcode cc = conn_recv(c, buf, sizeof(buf), &n);
        int st;

        if (cc == CURLE_AGAIN)
            return SR__HR_MORE;
        if (cc != CURLE_OK) {
            c->cc = cc;
            return SR__CONN_BROKE;
        }
        if (!n)
            return sr__hr_eof(&c->rep) == SR__HR_DONE ? SR__HR_DONE
                                                      : SR__CONN_BROKE;
        st = sr__hr_feed(&c->rep, buf, n, &used);
        if (st == SR__HR_DONE && used < n)
            c->rep.keep_alive = 0; /* bytes nobody asked for */
        if (st != SR__HR_MORE)
            return st;
    }
}

void sr__conn_done(sr__conn *c)
{
    c->exchanges++;
    c->idle_since = sr__now_ms();
    c->state = c->rep.keep_alive ? SR__CONN_IDLE : SR__CONN_DEAD;
}

signalr_err sr__conn_fail(sr__conn *c, const signalr_request *req, int how,
                          long elapsed_ms, int may_resend, int *resend,
                          signalr_error *err)
{
    signalr_err rc;
    char why[CURL_ERROR_SIZE + 64];

    *resend = 0;
    c->state = SR__CONN_DEAD;
    if (how == SR__FAIL_TIMEOUT) {
        if (!c->out_pos)
            return sr__fail(err, SIGNALR_ECONNECT, "connect timed out: "
                            "Operation timed out after %ld milliseconds "
                            "before the request was sent", elapsed_ms);
        rc = sr__fail(err, SIGNALR_ETIMEDOUT, "timed out: Operation timed "
                      "out after %ld milliseconds with %llu bytes "
                      "received", elapsed_ms, c->rep.seen);
        if (err)
            err->sent = 1;
        return rc;
    }
    /* not one byte of it left this process: provably not delivered */
    if (!c->out_pos && how == SR__FAIL_WRITE) {
        if (c->reused && may_resend) {
            *resend = 1;
            return SIGNALR_OK;
        }
        return sr__fail(err, SIGNALR_ECONNECT, "could not send: %s",
                        curl_easy_strerror(c->cc));
    }
    if (how == SR__FAIL_BAD) {
        rc = sr__fail(err, SIGNALR_EHTTP, "malformed reply: %s",
                      c->rep.why ? c->rep.why : "unreadable");
        if (err)
            err->sent = 1;
        return rc;
    }
    /* it was written (in part or whole): no reply byte came */
    if (!c->rep.seen && c->reused) {
        if (req->idempotent && may_resend) {
            /* what libcurl does on a dead reused connection */
            *resend = 1;
            return SIGNALR_OK;
        }
        if (!req->idempotent) {
            rc = sr__fail(err, SIGNALR_EHTTP,
                          "the connection closed before a reply, after the "
                          "request was sent: it may have been delivered, "
                          "so it was not sent again");
            if (err)
                err->sent = 1;
            return rc;
        }
    }
    if (c->cc != CURLE_OK)
        snprintf(why, sizeof(why), "%s%s%s", curl_easy_strerror(c->cc),
                 c->errbuf[0] ? ": " : "", c->errbuf);
    else
        snprintf(why, sizeof(why), "%s",
                 c->rep.seen ? "the connection closed in the middle of the "
                               "reply"
                             : "Empty reply from server");
    rc = sr__fail(err, SIGNALR_EHTTP, "%s", why);
    if (err)
        err->sent = 1;
    return rc;
}
