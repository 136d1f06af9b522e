/* http_reply.h - a sans-I/O reader of HTTP/1.1 replies (private): bytes in,
 * split anywhere; status, the headers the transports act on, the body's
 * first bytes and whether the connection may carry another request out.
 *
 * Usage (one reply at a time; the struct is reused, its buffers kept):
 *
 *     sr__hreply r = {0};
 *     sr__hr_init(&r, 64 * 1024, is_head);
 *     while ((st = sr__hr_feed(&r, buf, n, &used)) == SR__HR_MORE)
 *         n = read_more(buf);              (or sr__hr_eof(&r) on a close)
 *     ... r.status, r.body, r.keep_alive ...; bytes past `used` are not
 *     part of this reply (a peer that pipelines: do not reuse the socket)
 *     sr__hr_free(&r);
 */
#ifndef SIGNALR_HTTP_REPLY_H
#define SIGNALR_HTTP_REPLY_H

#include "internal.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden) /* see internal.h */
#endif

#define SR__HR_MORE 0   /* give more bytes (or sr__hr_eof) */
#define SR__HR_DONE 1   /* a whole final reply was read */
#define SR__HR_BAD (-1) /* not a reply this reader accepts; why says so */

/* A head (status line and header lines, or one chunk-size or trailer
 * line) may be at most this long. */
#define SR__HR_MAX_HEAD (64 * 1024)

typedef struct {
    /* set by sr__hr_init */
    size_t keep;             /* body bytes kept; the rest is counted only */
    int no_body;             /* the request was HEAD: no body follows */
    /* the reply (the final one: 1xx heads are passed over) */
    int status;
    int minor;               /* HTTP/1.<minor> */
    int keep_alive;          /* 1: the connection may carry another request */
    char error_code[96];     /* x-ms-error-code, trimmed; "" when absent */
    long retry_after_s;      /* Retry-After in seconds; -1 when absent */
    char *body;              /* owned; NUL-terminated once anything kept */
    size_t body_len, body_cap;
    unsigned long long body_total; /* body bytes read, kept or not */
    unsigned long long seen; /* bytes fed since sr__hr_init */
    const char *why;         /* static text once SR__HR_BAD */
    /* reading state */
    int state, framing;
    unsigned long long left; /* bytes left in the body or chunk */
    char *line;              /* a head or line split across feeds (owned) */
    size_t line_len, line_cap;
} sr__hreply;

/* Ready r for the next reply: keep the first `keep` body bytes; no_body
 * for the reply to a HEAD request.  Buffers from earlier replies are kept
 * for reuse. */
void sr__hr_init(sr__hreply *r, size_t keep, int no_body);
/* Release r's buffers (r is zeroed; freeing twice is fine). */
void sr__hr_free(sr__hreply *r);
/* Read n bytes of p.  *used gets how many belong to this reply (all of
 * them unless SR__HR_DONE came early).  SR__HR_MORE, SR__HR_DONE or
 * SR__HR_BAD; after DONE or BAD further feeds change nothing. */
int sr__hr_feed(sr__hreply *r, const char *p, size_t n, size_t *used);
/* The peer closed the connection: SR__HR_DONE when the body runs to the
 * close (and then keep_alive is 0), else SR__HR_BAD (r->seen tells
 * whether any byte of a reply had come). */
int sr__hr_eof(sr__hreply *r);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
