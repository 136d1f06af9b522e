/* sock.c - the socket of a server connection outside nginx: libcurl
 * connects (TCP, TLS, proxies, certificate checks) in connect-only mode,
 * without blocking, through a multi handle of its own; then bytes move
 * with curl_easy_send/recv between the socket and a signalr_ws. */
#include "internal.h"
#include "curl_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FDS 4

struct signalr_sock {
    CURLM *multi;
    CURL *easy;
    int connected, failed, want_write;
    curl_socket_t fd;
    curl_socket_t fds[MAX_FDS]; /* while connecting */
    int what[MAX_FDS];
    int nfds;
    long timeout_ms;
    signalr_err code;
    char errbuf[CURL_ERROR_SIZE];
    char why[CURL_ERROR_SIZE + 64];
};

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *ud, void *sp)
{
    signalr_sock *s = ud;
    int i;

    (void)e;
    (void)sp;
    for (i = 0; i < s->nfds; i++)
        if (s->fds[i] == fd)
            break;
    if (what == CURL_POLL_REMOVE) {
        if (i < s->nfds) {
            s->fds[i] = s->fds[s->nfds - 1];
            s->what[i] = s->what[s->nfds - 1];
            s->nfds--;
        }
        return 0;
    }
    if (i == s->nfds) {
        if (s->nfds == MAX_FDS)
            return 0;
        s->nfds++;
    }
    s->fds[i] = fd;
    s->what[i] = (what & CURL_POLL_IN ? 1 : 0) | (what & CURL_POLL_OUT ? 2 : 0);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *ud)
{
    signalr_sock *s = ud;

    (void)m;
    s->timeout_ms = timeout_ms;
    return 0;
}

signalr_err signalr_sock_open(signalr_sock **out, const char *url,
                              const signalr_sock_options *o,
                              signalr_error *err)
{
    signalr_sock *s;
    long ct = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    int running = 0;

    sr__ok(err);
    if (!out || !url)
        return sr__fail(err, SIGNALR_EINVAL, "missing URL or output");
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return sr__fail(err, SIGNALR_EINVAL, "the URL must be http:// or "
                        "https://");
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    s->fd = CURL_SOCKET_BAD;
    s->timeout_ms = -1;
    s->easy = curl_easy_init();
    s->multi = curl_multi_init();
    if (!s->easy || !s->multi) {
        signalr_sock_free(s);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, ct);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYPEER, o && o->insecure ? 0L : 1L);
    curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYHOST, o && o->insecure ? 0L : 2L);
    if (o && o->ca_file)
        curl_easy_setopt(s->easy, CURLOPT_CAINFO, o->ca_file);
    if (o && o->proxy)
        curl_easy_setopt(s->easy, CURLOPT_PROXY, o->proxy);
    /* a proxy (named, or the environment's) carries raw bytes only as a
     * CONNECT tunnel, for ws:// too */
    curl_easy_setopt(s->easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
    if (curl_multi_add_handle(s->multi, s->easy)) {
        signalr_sock_free(s);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    *out = s;
    return SIGNALR_OK;
}

void signalr_sock_free(signalr_sock *s)
{
    if (!s)
        return;
    if (s->multi && s->easy)
        curl_multi_remove_handle(s->multi, s->easy);
    if (s->easy)
        curl_easy_cleanup(s->easy);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    free(s);
}

static int sock_fail(signalr_sock *s, signalr_error *err, signalr_err code,
                     const char *what, const char *detail)
{
    s->failed = 1;
    s->code = code;
    snprintf(s->why, sizeof s->why, "%s: %s", what,
             detail && *detail ? detail : "failed");
    sr__fail(err, code, "%s", s->why);
    return -1;
}

int signalr_sock_connect(signalr_sock *s, signalr_error *err)
{
    CURLMsg *msg;
    int running = 0, left = 0, i, n;
    curl_socket_t fds[MAX_FDS];

    sr__ok(err);
    if (s->connected)
        return 1;
    if (s->failed) {
        sr__fail(err, s->code, "%s", s->why);
        return -1;
    }
    n = s->nfds;
    memcpy(fds, s->fds, sizeof fds);
    for (i = 0; i < n; i++)
        curl_multi_socket_action(s->multi, fds[i], 0, &running);
    curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    while ((msg = curl_multi_info_read(s->multi, &left))) {
        curl_socket_t fd = CURL_SOCKET_BAD;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result;
        if (rc != CURLE_OK)
            return sock_fail(s, err, rc == CURLE_OPERATION_TIMEDOUT
                             ? SIGNALR_ETIMEDOUT : SIGNALR_ECONNECT,
                             "could not connect", *s->errbuf ? s->errbuf
                             : curl_easy_strerror(rc));
        if (curl_easy_getinfo(s->easy, CURLINFO_ACTIVESOCKET, &fd) ||
            fd == CURL_SOCKET_BAD)
            return sock_fail(s, err, SIGNALR_ECONNECT, "could not connect",
                             "no socket");
        s->fd = fd;
        s->connected = 1;
        s->nfds = 0;
        return 1;
    }
    return 0;
}

int signalr_sock_fds(signalr_sock *s, int *fds, int *events, int max)
{
    int i, n = 0;

    if (s->failed)
        return 0;
    if (s->connected) {
        if (max < 1)
            return 0;
        fds[0] = (int)s->fd;
        events[0] = 1 | (s->want_write ? 2 : 0);
        return 1;
    }
    for (i = 0; i < s->nfds && n < max; i++) {
        fds[n] = (int)s->fds[i];
        events[n] = s->what[i];
        n++;
    }
    return n;
}

long signalr_sock_timeout(signalr_sock *s)
{
    return s->connected || s->failed ? -1 : s->timeout_ms;
}

/* Write what ws has ready until the socket would block: 1, or -1. */
static int write_out(signalr_sock *s, signalr_ws *ws, signalr_error *err)
{
    for (;;) {
        const char *p;
        size_t len, n = 0;
        CURLcode rc;

        signalr_ws_output(ws, &p, &len);
        if (!len)
            return 1;
        rc = curl_easy_send(s->easy, p, len, &n);
        if (rc == CURLE_AGAIN) {
            s->want_write = 1;
            return 1;
        }
        if (rc != CURLE_OK)
            return sock_fail(s, err, SIGNALR_ECONNECT, "the connection "
                             "broke", curl_easy_strerror(rc));
        signalr_ws_written(ws, n);
    }
}

int signalr_sock_write(signalr_sock *s, signalr_ws *ws, int *want_write,
                       signalr_error *err)
{
    int r;

    sr__ok(err);
    if (want_write)
        *want_write = 0;
    if (!s->connected || s->failed) {
        sr__fail(err, s->failed ? s->code : SIGNALR_ECONNECT, "%s",
                 s->failed ? s->why : "the socket is not connected");
        return -1;
    }
    s->want_write = 0;
    r = write_out(s, ws, err);
    if (want_write)
        *want_write = s->want_write;
    return r;
}

int signalr_sock_pump(signalr_sock *s, signalr_ws *ws, int *want_write,
                      signalr_error *err)
{
    char buf[65536];
    int reads, eof = 0;

    sr__ok(err);
    if (want_write)
        *want_write = 0;
    if (!s->connected) {
        sr__fail(err, SIGNALR_ECONNECT, "the socket is not connected");
        return -1;
    }
    if (s->failed) {
        sr__fail(err, s->code, "%s", s->why);
        return -1;
    }
    s->want_write = 0;
    for (reads = 0; reads < 64; reads++) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(s->easy, buf, sizeof buf, &n);
        if (rc == CURLE_AGAIN)
            break;
        if (rc != CURLE_OK)
            return sock_fail(s, err, SIGNALR_ECONNECT, "the connection "
                             "broke", curl_easy_strerror(rc));
        if (n == 0) {
            eof = 1;
            break;
        }
        if (signalr_ws_input(ws, buf, n, err))
            return -1;
    }
    if (write_out(s, ws, err) < 0)
        return -1;
    if (want_write)
        *want_write = s->want_write;
    if (eof || signalr_ws_state(ws, NULL) == SIGNALR_WS_CLOSED)
        return 0;
    return 1;
}
