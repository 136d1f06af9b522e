/* curl_common.h - what the blocking and the multi transport share
 * (private). */
#ifndef SIGNALR_CURL_COMMON_H
#define SIGNALR_CURL_COMMON_H

#include "internal.h"

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
    char *ca_file, *ua;        /* copies */
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
void sr__sink_free(sr__sink *s);
void sr__sleep_ms(long ms);
long long sr__now_ms(void);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
