/* http_curl.c - the blocking transport: a lean keep-alive connection for
 * SignalR operations (http_lean.c), one reusable libcurl easy handle for
 * the rest (the full path), signalr_call() (build, send, read, retry), and
 * the curl set-up shared with the multi transport.
 *
 * Caveats: curl_global_init() is the embedder's job (see signalr.h). */
#define _POSIX_C_SOURCE 200809L
#include "curl_common.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BODY_KEEP (64 * 1024)
#define DATA_KEEP (8 * 1024 * 1024)

struct signalr_http {
    sr__easy *easy;            /* the full path; made on first use */
    sr__sink sink;             /* the last reply's body, either path */
    sr__conn *conn;            /* the lean path's connection, or NULL */
    CURLSH *share;             /* DNS and TLS sessions across reconnects */
    int lean_off;              /* the host answered other than HTTP/1.x */
};

/* ===== shared with http_multi.c ===== */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sr__sink *s = ud;
    size_t len = size * n, room = s->keep - s->body_len, k;

    /* Keep the first s->keep bytes; drain the rest. */
    k = len < room ? len : room;
    if (!k)
        return len;
    if (s->body_len + k + 1 > s->body_cap) {
        size_t cap = s->body_cap ? s->body_cap : 256;
        char *np;

        while (cap < s->body_len + k + 1)
            cap *= 2;
        np = realloc(s->body, cap);
        if (!np)
            return len; /* keep what we have: the status still counts */
        s->body = np;
        s->body_cap = cap;
    }
    memcpy(s->body + s->body_len, p, k);
    s->body_len += k;
    s->body[s->body_len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    sr__sink *s = ud;
    size_t len = size * n, vlen;
    const char *v;

    if (len > 16 && !strncasecmp(p, "x-ms-error-code:", 16)) {
        v = p + 16;
        vlen = len - 16;
    } else if (len > 12 && !strncasecmp(p, "retry-after:", 12)) {
        char tmp[24];
        size_t k = len - 12 < sizeof(tmp) - 1 ? len - 12 : sizeof(tmp) - 1;
        char *end;
        long secs;

        memcpy(tmp, p + 12, k);
        tmp[k] = '\0';
        secs = strtol(tmp, &end, 10);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (end != tmp && !*end && secs >= 0)
            s->retry_after_s = secs;
        return len;
    } else {
        if (len > 5 && !strncmp(p, "HTTP/", 5)) { /* a new response */
            s->error_code[0] = '\0';
            s->retry_after_s = -1;
            s->body_len = 0;
        }
        return len;
    }
    while (vlen && isspace((unsigned char)*v)) {
        v++;
        vlen--;
    }
    while (vlen && isspace((unsigned char)v[vlen - 1]))
        vlen--;
    if (vlen >= sizeof(s->error_code))
        vlen = sizeof(s->error_code) - 1;
    memcpy(s->error_code, v, vlen);
    s->error_code[vlen] = '\0';
    return len;
}

void sr__sink_free(sr__sink *s)
{
    free(s->body);
    s->body = NULL;
    s->body_len = s->body_cap = 0;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    sr__sink *s = ud;
    size_t k = s->up_len - s->up_pos;

    if (k > size * n)
        k = size * n;
    memcpy(p, s->up + s->up_pos, k);
    s->up_pos += k;
    return k;
}

/* libcurl rewinds to resend: on a redirect, or when a reused connection
 * died before any reply byte.  A send whose body was read may have been
 * delivered, so it is never resent behind the caller's back. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    sr__sink *s = ud;

    if (origin == SEEK_SET && offset == 0 && s->up_pos == 0)
        return CURL_SEEKFUNC_OK;
    return CURL_SEEKFUNC_FAIL;
}

signalr_err sr__curl_error(CURL *c, CURLcode cc, const sr__sink *s,
                           signalr_error *err)
{
    long sent = 0;

    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent);
    if (s->up_pos)
        sent = 1;
    return sr__curl_fail(cc, s->errbuf, sent != 0, err);
}

signalr_err sr__curl_fail(CURLcode cc, const char *errbuf, int sent,
                          signalr_error *err)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
    signalr_err rc;

    if (cc == CURLE_SEND_FAIL_REWIND) {
        rc = sr__fail(err, SIGNALR_EHTTP,
                      "the connection closed before a reply, after the "
                      "request was sent: it may have been delivered, so it "
                      "was not sent again");
        if (err)
            err->sent = 1;
        return rc;
    }
    /* if-chain, not switch: curl's enum is open-ended */
    if (cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY ||
        cc == CURLE_COULDNT_CONNECT)
        return sr__fail(err, SIGNALR_ECONNECT, "could not connect: %s", why);
    if (cc == CURLE_OPERATION_TIMEDOUT && !sent)
        return sr__fail(err, SIGNALR_ECONNECT, "connect timed out: %s", why);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = sr__fail(err, SIGNALR_ETIMEDOUT, "timed out: %s", why);
    else if (cc == CURLE_PEER_FAILED_VERIFICATION ||
             cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CERTPROBLEM ||
             cc == CURLE_SSL_CACERT_BADFILE)
        rc = sr__fail(err, SIGNALR_EHTTP,
                      "TLS failure (certificate not trusted? set ca_file "
                      "or verify_tls): %s", why);
    else
        rc = sr__fail(err, SIGNALR_EHTTP, "%s%s", why,
                      sent ? "" : " (request not sent)");
    if (err)
        err->sent = sent != 0;
    return rc;
}

sr__easy *sr__easy_new(void)
{
    sr__easy *e = calloc(1, sizeof(*e));

    if (e && !(e->curl = curl_easy_init())) {
        free(e);
        e = NULL;
    }
    return e;
}

void sr__easy_free(sr__easy *e)
{
    if (!e)
        return;
    curl_easy_cleanup(e->curl);
    free(e->ca_file);
    free(e->ua);
    free(e->proxy);
    free(e->nodes);
    free(e->lines);
    free(e);
}

/* Both NULL or equal strings. */
static int same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static int set_copy(char **slot, const char *v)
{
    char *c = v ? sr__strndup(v, strlen(v)) : NULL;

    if (v && !c)
        return -1;
    free(*slot);
    *slot = c;
    return 0;
}

/* The header lines of req, NUL-separated, into e->lines, and e->nodes
 * linked over them; 0, or -1 when out of memory. */
static int build_headers(sr__easy *e, const signalr_request *req)
{
    const char *names[3] = {"Content-Type", "Authorization",
                            "Asrs-User-Agent"};
    const char *vals[3];
    size_t need = sizeof("Expect:"), n = 1, i, at;
    const char *line;

    vals[0] = req->content_type ? req->content_type : "";
    vals[1] = req->authorization;
    vals[2] = req->product_info;
    for (i = 0; i < 3; i++)
        if (vals[i]) {
            need += strlen(names[i]) + 2 + strlen(vals[i]) + 1;
            n++;
        }
    for (line = req->headers; line && *line;) { /* "Name: value\r\n" */
        size_t k = strcspn(line, "\r\n");

        if (k) {
            need += k + 1;
            n++;
        }
        line += k;
        line += strspn(line, "\r\n");
    }
    if (need > e->cap_lines) {
        char *nl = realloc(e->lines, need);

        if (!nl)
            return -1;
        e->lines = nl;
        e->cap_lines = need;
    }
    if (n > e->cap_nodes) {
        struct curl_slist *nn = realloc(e->nodes, n * sizeof(*nn));

        if (!nn)
            return -1;
        e->nodes = nn;
        e->cap_nodes = n;
    }
    memcpy(e->lines, "Expect:", sizeof("Expect:"));
    e->nodes[0].data = e->lines;
    at = sizeof("Expect:");
    n = 1;
    for (i = 0; i < 3; i++) {
        size_t a, b;

        if (!vals[i])
            continue;
        a = strlen(names[i]);
        b = strlen(vals[i]);
        e->nodes[n++].data = e->lines + at;
        memcpy(e->lines + at, names[i], a);
        memcpy(e->lines + at + a, ": ", 2);
        memcpy(e->lines + at + a + 2, vals[i], b + 1);
        at += a + 2 + b + 1;
    }
    for (line = req->headers; line && *line;) {
        size_t k = strcspn(line, "\r\n");

        if (k) {
            e->nodes[n++].data = e->lines + at;
            memcpy(e->lines + at, line, k);
            e->lines[at + k] = '\0';
            at += k + 1;
        }
        line += k;
        line += strspn(line, "\r\n");
    }
    for (i = 0; i < n; i++)
        e->nodes[i].next = i + 1 < n ? &e->nodes[i + 1] : NULL;
    return 0;
}

/* The option sets a request can need; one handle switching between them
 * is reset first. */
enum { SHAPE_HEAD = 1, SHAPE_GET, SHAPE_STREAM, SHAPE_FIELDS };

signalr_err sr__curl_prepare(sr__easy *e, const signalr_request *req,
                             const signalr_http_options *o, sr__sink *s,
                             signalr_error *err)
{
    static const signalr_http_options defaults = {0, 0, 1, NULL, NULL, NULL, NULL};
    CURL *c = e->curl;
    long timeout, conn_timeout;
    int shape;

    if (!o)
        o = &defaults;
    s->body_len = 0;
    s->up = NULL;
    s->up_len = s->up_pos = 0;
    s->keep = signalr_op_returns_data(req->op) ? DATA_KEEP : BODY_KEEP;
    s->error_code[0] = '\0';
    s->retry_after_s = -1;
    s->errbuf[0] = '\0';
    sr__http_timeouts(o, &timeout, &conn_timeout);
    shape = !strcmp(req->method, "HEAD")  ? SHAPE_HEAD
            : !strcmp(req->method, "GET") ? SHAPE_GET
            : !req->idempotent            ? SHAPE_STREAM
                                          : SHAPE_FIELDS;
    if (build_headers(e, req))
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");

    if (shape != e->shape || timeout != e->timeout ||
        conn_timeout != e->conn_timeout || !o->verify_tls != !e->verify ||
        !same(o->ca_file, e->ca_file) || !same(req->user_agent, e->ua) ||
        !same(o->proxy, e->proxy)) {
        /* a new set-up: reset keeps the connection cache (keep-alive) */
        e->shape = 0;
        if (set_copy(&e->ca_file, o->ca_file) ||
            set_copy(&e->ua, req->user_agent) ||
            set_copy(&e->proxy, o->proxy))
            return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, conn_timeout);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->verify_tls ? 1L : 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->verify_tls ? 2L : 0L);
        if (o->ca_file)
            curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
        if (o->proxy)
            curl_easy_setopt(c, CURLOPT_PROXY, o->proxy);
        curl_easy_setopt(c, CURLOPT_USERAGENT, req->user_agent);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        /* paths are sent as built: "/../" never collapses into another
         * route, whatever a builder lets through */
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
        if (shape == SHAPE_HEAD) {
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (shape == SHAPE_GET) {
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        } else if (shape == SHAPE_STREAM) {
            /* sends: the body through the read callback, never resent */
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        }
        e->sink = NULL;
        e->timeout = timeout;
        e->conn_timeout = conn_timeout;
        e->verify = o->verify_tls;
        e->shape = shape;
    }
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    if (e->sink != s) {
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
        curl_easy_setopt(c, CURLOPT_READDATA, s);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, s);
        e->sink = s;
    }
    if (shape == SHAPE_STREAM) {
        s->up = req->body ? req->body : "";
        s->up_len = req->body ? req->body_len : 0;
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->up_len);
    } else if (shape == SHAPE_FIELDS) {
        /* POST/PUT/DELETE: always send a Content-Length */
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
    }
    /* the list may have grown elsewhere: its head is what libcurl reads */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->nodes);
    return SIGNALR_OK;
}

void sr__sleep_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) == -1)
        ;
}

long long sr__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ===== the blocking transport ===== */

signalr_err signalr_http_new(signalr_http **out, signalr_error *err)
{
    signalr_http *h = calloc(1, sizeof(*h));

    *out = NULL;
    if (!h)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    *out = h;
    return SIGNALR_OK;
}

void signalr_http_free(signalr_http *h)
{
    if (!h)
        return;
    sr__conn_free(h->conn);
    sr__easy_free(h->easy);
    if (h->share)
        curl_share_cleanup(h->share);
    sr__sink_free(&h->sink);
    free(h);
}

/* A share of DNS answers and TLS sessions for a transport's connections
 * (a reconnect resumes the TLS session); NULL when none could be made. */
CURLSH *sr__share_new(void)
{
    CURLSH *sh = curl_share_init();

    if (sh) {
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    return sh;
}

void sr__http_timeouts(const signalr_http_options *o, long *timeout,
                       long *conn_timeout)
{
    *timeout = o && o->timeout_ms > 0 ? o->timeout_ms : 10000;
    *conn_timeout = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                    : *timeout < 5000 ? *timeout : 5000;
}

/* 1 when c was opened for req's endpoint with options o. */
static int conn_fits(const sr__conn *c, const signalr_request *req,
                     const signalr_http_options *o)
{
    return c->port == req->port && c->tls == req->tls &&
           !c->verify == !o->verify_tls && same(c->ca_file, o->ca_file) &&
           !strcmp(c->host, req->host);
}

/* Wait until c's socket is ready for `events` or the deadline: 1 ready,
 * 0 timed out. */
static int wait_fd(const sr__conn *c, short events, long long deadline)
{
    for (;;) {
        struct pollfd p;
        long long left = deadline - sr__now_ms();
        int r;

        if (left <= 0)
            return 0;
        p.fd = c->fd;
        p.events = events;
        p.revents = 0;
        r = poll(&p, 1, left > 2147483647LL ? 2147483647 : (int)left);
        if (r > 0)
            return 1; /* ready, or an error the next call reports */
        if (r == 0 || errno != EINTR)
            return r == 0 ? 0 : 1;
    }
}

/* One exchange on c: 0 when the reply was read whole, else SR__FAIL_*. */
static int exchange(sr__conn *c, long long deadline)
{
    int r;

    while (!(r = sr__conn_write(c)))
        if (!wait_fd(c, POLLOUT, deadline))
            return SR__FAIL_TIMEOUT;
    if (r < 0)
        return SR__FAIL_WRITE;
    for (;;) {
        if (!wait_fd(c, POLLIN, deadline))
            return SR__FAIL_TIMEOUT;
        r = sr__conn_read(c);
        if (r == SR__HR_DONE)
            return 0;
        if (r == SR__HR_BAD)
            return SR__FAIL_BAD;
        if (r == SR__CONN_BROKE)
            return SR__FAIL_READ;
    }
}

/* The lean path (http_lean.c): *fallback when this request must take the
 * full path instead, decided before any byte of it was written. */
static signalr_err lean_perform(signalr_http *h, const signalr_request *req,
                                const signalr_http_options *o,
                                signalr_http_reply *reply, int *fallback,
                                signalr_error *err)
{
    long timeout, conn_timeout;
    long long t0 = sr__now_ms(), deadline;
    size_t keep = signalr_op_returns_data(req->op) ? DATA_KEEP : BODY_KEEP;
    signalr_err rc = SIGNALR_OK;
    int tries;

    *fallback = 0;
    sr__http_timeouts(o, &timeout, &conn_timeout);
    deadline = t0 + timeout;
    /* a second try only on a fresh connection, where no resend is due */
    for (tries = 0; tries < 2; tries++) {
        sr__conn *c = h->conn;
        int how, resend;

        if (c && (!conn_fits(c, req, o) || !sr__conn_alive(c, 0))) {
            sr__conn_free(c);
            h->conn = c = NULL;
        }
        if (!c) {
            long long left = deadline - sr__now_ms();

            if (sr__lean_refused(o)) {
                *fallback = 1;
                return SIGNALR_OK;
            }
            if (left <= 0)
                return sr__fail(err, SIGNALR_ECONNECT, "connect timed out "
                                "after %ld milliseconds", timeout);
            if (!h->share)
                h->share = sr__share_new();
            rc = sr__conn_open(req, o, h->share,
                               conn_timeout < left ? conn_timeout
                                                   : (long)left,
                               (long)left, &c, err);
            if (rc)
                return rc;
            h->conn = c;
        }
        rc = sr__conn_begin(c, req, keep, err);
        if (rc)
            return rc;
        how = exchange(c, deadline);
        if (!how) {
            char *b = h->sink.body;
            size_t cap = h->sink.body_cap;

            sr__conn_done(c);
            reply->status = c->rep.status;
            memcpy(reply->error_code, c->rep.error_code,
                   sizeof(reply->error_code));
            reply->retry_after_s = c->rep.retry_after_s;
            /* the body moves to the handle (the connection may go) */
            h->sink.body = c->rep.body;
            h->sink.body_cap = c->rep.body_cap;
            h->sink.body_len = c->rep.body_len;
            c->rep.body = b;
            c->rep.body_cap = cap;
            reply->body = h->sink.body ? h->sink.body : "";
            reply->body_len = h->sink.body_len;
            if (c->state != SR__CONN_IDLE) {
                sr__conn_free(c);
                h->conn = NULL;
            }
            return SIGNALR_OK;
        }
        rc = sr__conn_fail(c, req, how, (long)(sr__now_ms() - t0), !tries,
                           &resend, err);
        if (how == SR__FAIL_BAD)
            h->lean_off = 1;
        sr__conn_free(c);
        h->conn = NULL;
        if (!resend)
            return rc;
    }
    return rc;
}

signalr_err signalr_http_perform(signalr_http *h, const signalr_request *req,
                                 const signalr_http_options *o,
                                 signalr_http_reply *reply,
                                 signalr_error *err)
{
    static const signalr_http_options defaults = {0, 0, 1, NULL, NULL, NULL, NULL};
    CURL *curl;
    long status = 0;
    signalr_err rc;
    CURLcode cc;

    sr__ok(err);
    memset(reply, 0, sizeof(*reply));
    reply->retry_after_s = -1;
    if (!o)
        o = &defaults;
    if (!h->lean_off && sr__lean_eligible(req)) {
        int fallback;

        rc = lean_perform(h, req, o, reply, &fallback, err);
        if (!fallback)
            return rc;
    }
    if (!h->easy && !(h->easy = sr__easy_new()))
        return sr__fail(err, SIGNALR_ENOMEM, "could not create a curl handle");
    curl = h->easy->curl;
    rc = sr__curl_prepare(h->easy, req, o, &h->sink, err);
    if (rc)
        return rc;
    cc = curl_easy_perform(curl);
    if (cc != CURLE_OK)
        return sr__curl_error(curl, cc, &h->sink, err);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    reply->status = (int)status;
    memcpy(reply->error_code, h->sink.error_code, sizeof(reply->error_code));
    reply->retry_after_s = h->sink.retry_after_s;
    reply->body = h->sink.body ? h->sink.body : "";
    reply->body_len = h->sink.body_len;
    return SIGNALR_OK;
}

signalr_err signalr_http_fetch(signalr_http *h, const signalr_request *req,
                               const signalr_http_options *o,
                               const signalr_retry_policy *policy,
                               signalr_http_reply *reply, signalr_error *err)
{
    int attempt;

    for (attempt = 1;; attempt++) {
        signalr_err rc = signalr_http_perform(h, req, o, reply, err);
        int status = rc ? 0 : reply->status;
        long delay;

        if (!rc && status < 500 && status != 429 && status != 408)
            return rc;
        delay = signalr_retry_delay(req->op, policy, attempt,
                                    rc ? rc : SIGNALR_ESTATUS, status,
                                    rc ? -1 : reply->retry_after_s);
        if (delay < 0) {
            if (rc && err && attempt > 1) {
                size_t n = strlen(err->msg);

                snprintf(err->msg + n, sizeof(err->msg) - n,
                         " (after %d attempts)", attempt);
            }
            return rc;
        }
        sr__log_retry(o, req->op, attempt, rc ? rc : SIGNALR_ESTATUS,
                      rc ? err : NULL, delay);
        sr__sleep_ms(delay);
    }
}

signalr_err signalr_call_data(signalr_client *c, signalr_http *h,
                              signalr_op op, const signalr_params *p,
                              const signalr_http_options *o,
                              const signalr_retry_policy *policy, int *value,
                              char **body, size_t *body_len,
                              signalr_error *err)
{
    int attempt;

    *value = 0;
    if (body)
        *body = NULL;
    if (body_len)
        *body_len = 0;
    for (attempt = 1;; attempt++) {
        signalr_request req;
        signalr_http_reply hr;
        signalr_reply r;
        signalr_err rc;
        long delay;

        rc = signalr_request_build(c, op, p, time(NULL), &req, err);
        if (rc)
            return rc; /* bad input: nothing was sent */
        rc = signalr_http_perform(h, &req, o, &hr, err);
        signalr_request_clear(&req);
        if (!rc) {
            r.status = hr.status;
            r.error_code = hr.error_code;
            r.body = hr.body;
            r.body_len = hr.body_len;
            rc = signalr_reply_read(op, &r, value, err);
            if (!rc && body && signalr_op_returns_data(op)) {
                *body = sr__strndup(hr.body, hr.body_len);
                if (!*body)
                    return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
                if (body_len)
                    *body_len = hr.body_len;
            }
            if (!rc)
                return rc;
        }
        delay = signalr_retry_delay(op, policy, attempt, rc, hr.status,
                                    rc == SIGNALR_ESTATUS ? hr.retry_after_s
                                                          : -1);
        if (delay < 0) {
            if (err && attempt > 1) {
                size_t n = strlen(err->msg);

                snprintf(err->msg + n, sizeof(err->msg) - n,
                         " (after %d attempts)", attempt);
            }
            return rc;
        }
        sr__log_retry(o, op, attempt, rc, err, delay);
        sr__sleep_ms(delay);
    }
}

signalr_err signalr_call(signalr_client *c, signalr_http *h, signalr_op op,
                         const signalr_params *p,
                         const signalr_http_options *o,
                         const signalr_retry_policy *policy, int *value,
                         signalr_error *err)
{
    return signalr_call_data(c, h, op, p, o, policy, value, NULL, NULL, err);
}
