/* http_curl.c - the blocking transport: one reusable libcurl easy handle
 * (keep-alive), plus signalr_call(), which builds, sends, reads and
 * retries.
 *
 * Caveats: curl_global_init() is the embedder's job (see signalr.h). */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BODY_KEEP (64 * 1024)

struct signalr_http {
    CURL *curl;
    char *body;
    size_t body_len;
    signalr_http_reply *reply; /* being filled by the callbacks */
    char errbuf[CURL_ERROR_SIZE];
};

signalr_err signalr_http_new(signalr_http **out, signalr_error *err)
{
    signalr_http *h = calloc(1, sizeof(*h));

    *out = NULL;
    if (!h)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    h->curl = curl_easy_init();
    h->body = malloc(BODY_KEEP + 1);
    if (!h->curl || !h->body) {
        signalr_http_free(h);
        return sr__fail(err, SIGNALR_ENOMEM, "could not create a curl handle");
    }
    *out = h;
    return SIGNALR_OK;
}

void signalr_http_free(signalr_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    free(h->body);
    free(h);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    signalr_http *h = ud;
    size_t len = size * n, room = BODY_KEEP - h->body_len;

    /* Keep the first 64 KiB (error bodies are short); drain the rest. */
    if (room) {
        size_t k = len < room ? len : room;

        memcpy(h->body + h->body_len, p, k);
        h->body_len += k;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    signalr_http *h = ud;
    size_t len = size * n, vlen;
    const char *v;

    if (len > 16 && !strncasecmp(p, "x-ms-error-code:", 16)) {
        v = p + 16;
        vlen = len - 16;
    } else if (len > 12 && !strncasecmp(p, "retry-after:", 12)) {
        char tmp[24];
        size_t k = len - 12 < sizeof(tmp) - 1 ? len - 12 : sizeof(tmp) - 1;
        char *end;
        long s;

        memcpy(tmp, p + 12, k);
        tmp[k] = '\0';
        s = strtol(tmp, &end, 10);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (end != tmp && !*end && s >= 0)
            h->reply->retry_after_s = s;
        return len;
    } else {
        if (len > 5 && !strncmp(p, "HTTP/", 5)) { /* new response */
            h->reply->error_code[0] = '\0';
            h->reply->retry_after_s = -1;
            h->body_len = 0;
        }
        return len;
    }
    while (vlen && isspace((unsigned char)*v)) {
        v++;
        vlen--;
    }
    while (vlen && isspace((unsigned char)v[vlen - 1]))
        vlen--;
    if (vlen >= sizeof(h->reply->error_code))
        vlen = sizeof(h->reply->error_code) - 1;
    memcpy(h->reply->error_code, v, vlen);
    h->reply->error_code[vlen] = '\0';
    return len;
}

static signalr_err transport_error(signalr_http *h, CURLcode cc,
                                   signalr_error *err)
{
    long sent = 0;
    const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);

    curl_easy_getinfo(h->curl, CURLINFO_REQUEST_SIZE, &sent);
    /* if-chain, not switch: curl's enum is open-ended */
    if (cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY ||
        cc == CURLE_COULDNT_CONNECT)
        return sr__fail(err, SIGNALR_ECONNECT, "could not connect: %s", why);
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        if (!sent)
            return sr__fail(err, SIGNALR_ECONNECT,
                            "connect timed out: %s", why);
        return sr__fail(err, SIGNALR_ETIMEDOUT, "timed out: %s", why);
    }
    if (cc == CURLE_PEER_FAILED_VERIFICATION ||
        cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CERTPROBLEM ||
        cc == CURLE_SSL_CACERT_BADFILE)
        return sr__fail(err, SIGNALR_EHTTP,
                        "TLS failure (certificate not trusted? set ca_file "
                        "or verify_tls): %s", why);
    return sr__fail(err, SIGNALR_EHTTP, "%s%s", why,
                    sent ? "" : " (request not sent)");
}

signalr_err signalr_http_perform(signalr_http *h, const signalr_request *req,
                                 const signalr_http_options *o,
                                 signalr_http_reply *reply,
                                 signalr_error *err)
{
    static const signalr_http_options defaults = {0, 0, 1, NULL};
    struct curl_slist *hdrs = NULL, *tmp;
    char line[64];
    long timeout, conn_timeout, status = 0;
    CURLcode cc;
    CURL *c = h->curl;

    sr__ok(err);
    if (!o)
        o = &defaults;
    memset(reply, 0, sizeof(*reply));
    reply->retry_after_s = -1;
    h->reply = reply;
    h->body_len = 0;
    h->errbuf[0] = '\0';
    timeout = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    conn_timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                   : timeout < 5000 ? timeout : 5000;

    /* reset keeps the connection cache: keep-alive survives */
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, conn_timeout);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->verify_tls ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->verify_tls ? 2L : 0L);
    if (o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(c, CURLOPT_USERAGENT, req->user_agent);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!strcmp(req->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(req->method, "GET")) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        /* POST/PUT/DELETE: always send a Content-Length */
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
    }
    tmp = curl_slist_append(hdrs, "Expect:");
    hdrs = tmp ? tmp : hdrs;
    if (tmp && req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        tmp = curl_slist_append(hdrs, line);
        hdrs = tmp ? tmp : hdrs;
    } else if (tmp) {
        tmp = curl_slist_append(hdrs, "Content-Type:");
        hdrs = tmp ? tmp : hdrs;
    }
    if (tmp && req->authorization) {
        /* "Authorization: " + value, built without a fixed buffer */
        size_t n = strlen(req->authorization);
        char *a = malloc(n + 16);

        if (a) {
            memcpy(a, "Authorization: ", 15);
            memcpy(a + 15, req->authorization, n + 1);
            tmp = curl_slist_append(hdrs, a);
            hdrs = tmp ? tmp : hdrs;
            free(a);
        } else {
            tmp = NULL;
        }
    }
    if (!tmp) {
        curl_slist_free_all(hdrs);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    cc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    h->reply = NULL;
    if (cc != CURLE_OK)
        return transport_error(h, cc, err);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    reply->status = (int)status;
    h->body[h->body_len] = '\0';
    reply->body = h->body;
    reply->body_len = h->body_len;
    return SIGNALR_OK;
}

static void sleep_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) == -1)
        ;
}

signalr_err signalr_call(signalr_client *c, signalr_http *h, signalr_op op,
                         const signalr_params *p,
                         const signalr_http_options *o,
                         const signalr_retry_policy *policy, int *value,
                         signalr_error *err)
{
    int attempt;

    *value = 0;
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
            if (!rc)
                return rc;
        }
        delay = signalr_retry_delay(op, policy, attempt, rc,
                                    hr.status,
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
        sleep_ms(delay);
    }
}
