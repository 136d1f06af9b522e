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

/* Reset c (keeping its connection cache) and set it up to send req into
 * s.  *hdrs receives the header list to free after the transfer. */
signalr_err sr__curl_prepare(CURL *c, const signalr_request *req,
                             const signalr_http_options *o, sr__sink *s,
                             struct curl_slist **hdrs, signalr_error *err);
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
