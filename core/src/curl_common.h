/* curl_common.h - what the blocking and the multi transport share
 * (private). */
#ifndef SIGNALR_CURL_COMMON_H
#define SIGNALR_CURL_COMMON_H

#include "internal.h"
#include "http_reply.h"

#include <curl/curl.h>

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden) /* see internal.h */
#endif

/* Where one exchange's reply lands: the first `keep` bytes of the body (64
 * KiB: error bodies are short; 8 MiB for operations that answer with
 * data), x-ms-error-code, Retry-After, curl's error text. */
typedef struct {
    char *body;
    size_t body_len, body_cap, keep;
    char error_code[96];
    long retry_after_s;
    char errbuf[CURL_ERROR_SIZE];
    /* the body of a send, handed to libcurl by a read callback that
     * refuses to rewind once read: libcurl then cannot silently resend a
     * message on a new connection after its reused one died */
    const char *up;
    size_t up_len, up_pos;
} sr__sink;

/* One easy handle and what it was last set up with, so the next transfer
 * of the same shape only sets what changed (no curl_easy_reset and two
 * dozen setopts per send), and its header list: nodes and lines owned
 * here, rewritten in place (no allocation per send once grown).  One
 * transfer at a time per handle; the list lives until the next prepare
 * or sr__easy_free. */
typedef struct {
    CURL *curl;
    int shape;                 /* 0: not set up; see http_curl.c */
    const sr__sink *sink;      /* where the callbacks write */
    long timeout, conn_timeout;
    int verify;
    char *ca_file, *ua, *proxy; /* copies */
    struct curl_slist *nodes;
    size_t cap_nodes;
    char *lines;
    size_t cap_lines;
} sr__easy;

/* NULL when out of memory. */
sr__easy *sr__easy_new(void);
void sr__easy_free(sr__easy *e);

/* Set e up to send req into s (the connection cache survives). */
signalr_err sr__curl_prepare(sr__easy *e, const signalr_request *req,
                             const signalr_http_options *o, sr__sink *s,
                             signalr_error *err);
/* Map a failed transfer to ECONNECT / ETIMEDOUT / EHTTP. */
signalr_err sr__curl_error(CURL *c, CURLcode cc, const sr__sink *s,
                           signalr_error *err);
/* The same from the code, curl's error text (errbuf, may be "") and
 * whether any of the request may have left (sent). */
signalr_err sr__curl_fail(CURLcode cc, const char *errbuf, int sent,
                          signalr_error *err);
void sr__sink_free(sr__sink *s);
void sr__sleep_ms(long ms);
long long sr__now_ms(void);
/* The whole exchange's and the connect's limits in ms from o (NULL ok). */
void sr__http_timeouts(const signalr_http_options *o, long *timeout,
                       long *conn_timeout);
/* NULL when out of memory (then connections share nothing). */
CURLSH *sr__share_new(void);

/* ===== the lean path (http_lean.c; which requests take it: there) ===== */

/* The request as HTTP/1.1 bytes, head and body in one buffer: *buf (owned
 * by the caller, grown with realloc to *cap) gets *len bytes.  0, or -1
 * when out of memory. */
int sr__http_wire(const signalr_request *req, char **buf, size_t *cap,
                  size_t *len);
/* 1 when req is of the shape the lean path sends. */
int sr__lean_eligible(const signalr_request *req);
/* 1 when a new connection must not be a lean one (a proxy in the
 * environment, SIGNALR_LEAN=0): that request takes the full path. */
int sr__lean_refused(const signalr_http_options *o);

enum { SR__CONN_CONNECTING = 1, SR__CONN_IDLE, SR__CONN_BUSY,
       SR__CONN_DEAD };
/* sr__conn_read's result besides SR__HR_MORE/DONE/BAD: the socket broke
 * (reset, or closed before the reply was whole) */
#define SR__CONN_BROKE (-2)
/* how an exchange failed, for sr__conn_fail */
enum { SR__FAIL_WRITE = 1, SR__FAIL_READ, SR__FAIL_BAD, SR__FAIL_TIMEOUT };
#define SR__CONN_FDS 4

/* One keep-alive socket libcurl opened in connect-only mode and that we
 * drive: an easy handle that owns it (and, while connecting without
 * blocking, a multi handle of its own, so no other transfer's cache
 * prunes or evicts it), one exchange at a time. */
typedef struct sr__conn {
    CURL *curl;
    CURLM *multi;              /* NULL when connected blocking */
    curl_socket_t fd;          /* CURL_SOCKET_BAD until connected */
    int state;                 /* SR__CONN_* */
    unsigned long exchanges;   /* completed on it; > 0: it is reused */
    int reused;                /* the current exchange is on a reused one */
    /* what it was opened for (the blocking transport matches on these) */
    char *host;
    int port, tls, verify;
    char *ca_file;
    /* connecting without blocking: libcurl's sockets, its timer, and who
     * is told of each socket's interest (ev 1 read, 2 write; 0 gone) */
    curl_socket_t cfds[SR__CONN_FDS];
    int cwhat[SR__CONN_FDS];
    int ncfds;
    long long ctimer_due;      /* -1: none */
    int (*watch)(struct sr__conn *c, curl_socket_t fd, int ev);
    void *owner;               /* the transport's: who watches it */
    void *job;                 /* the transport's: what it carries now */
    /* the exchange: the request's bytes, how many left, the reply */
    char *out;
    size_t out_len, out_pos, out_cap;
    sr__hreply rep;
    CURLcode cc;               /* the send or receive failure */
    int ev;                    /* the transport's: interest registered */
    long long idle_since;      /* when the last exchange ended (ms) */
    struct sr__conn *next;     /* the transport's list */
    char errbuf[CURL_ERROR_SIZE];
} sr__conn;

/* Open a connection for req's host and options, blocking (at most
 * conn_timeout ms to connect, timeout ms in all).  share (may be NULL)
 * shares DNS and TLS sessions between a transport's connections.  On
 * success *out is idle and owned by the caller (sr__conn_free).  Failures
 * as the full path reports them: ECONNECT, EHTTP (TLS), nothing sent. */
signalr_err sr__conn_open(const signalr_request *req,
                          const signalr_http_options *o, CURLSH *share,
                          long conn_timeout, long timeout, sr__conn **out,
                          signalr_error *err);
/* The same without blocking: *out is CONNECTING; watch(c, fd, ev) hears
 * of every socket libcurl wants watched meanwhile; drive it with
 * sr__conn_connect_step when one is ready (timer 0) or when ctimer_due
 * passed (timer 1).  owner is stored in c->owner. */
signalr_err sr__conn_start(const signalr_request *req,
                           const signalr_http_options *o, CURLSH *share,
                           long conn_timeout, long timeout,
                           int (*watch)(sr__conn *, curl_socket_t, int),
                           void *owner, sr__conn **out, signalr_error *err);
/* 1 connected (now IDLE, c->fd set), 0 not yet, -1 failed (err set, c
 * DEAD). */
int sr__conn_connect_step(sr__conn *c, int timer, signalr_error *err);
/* 1 when an idle connection may carry a request (not closed, reset or
 * holding bytes nobody asked for).  look: peek at the socket even when
 * the connection was idle for only a moment (its socket was readable). */
int sr__conn_alive(sr__conn *c, int look);
/* Start an exchange: req's bytes ready to write, the reader ready for a
 * reply whose first keep body bytes are kept. */
signalr_err sr__conn_begin(sr__conn *c, const signalr_request *req,
                           size_t keep, signalr_error *err);
/* Write what the socket takes: 1 all written, 0 it would block, -1 the
 * socket broke. */
int sr__conn_write(sr__conn *c);
/* Read what has come: SR__HR_MORE (it would block), SR__HR_DONE (c->rep
 * holds the reply), SR__HR_BAD (malformed) or SR__CONN_BROKE. */
int sr__conn_read(sr__conn *c);
/* A reply was read whole: IDLE again if it may be reused, else DEAD. */
void sr__conn_done(sr__conn *c);
/* An exchange failed (how: SR__FAIL_*, after elapsed_ms): c is DEAD.
 * Either *resend (only when may_resend: the request may go again on
 * another connection, as nothing of it left, or it is idempotent and its
 * reused connection died before a reply) and SIGNALR_OK, or the error to
 * report. */
signalr_err sr__conn_fail(sr__conn *c, const signalr_request *req, int how,
                          long elapsed_ms, int may_resend, int *resend,
                          signalr_error *err);
void sr__conn_free(sr__conn *c); /* NULL ok */

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
