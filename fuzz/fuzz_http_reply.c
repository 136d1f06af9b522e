/* fuzz_http_reply.c - the HTTP/1.1 reply reader on arbitrary bytes: fed
 * whole and in pieces of a width the input picks, the same verdict,
 * status, framing and kept body; used <= given; nothing kept past keep;
 * a finished reader stays finished.  The public faces of the same reader
 * (signalr_reply_parse, and signalr_reply_reader fed in pieces) give the
 * same reply or refusal. */
#include "http_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed p in pieces of width w (0: whole), then a close: the verdict. */
static int read_all(sr__hreply *r, const char *p, size_t n, size_t w,
                    size_t keep, int head, size_t *consumed)
{
    size_t off = 0, used = 0;
    int st = SR__HR_MORE;

    sr__hr_init(r, keep, head);
    *consumed = 0;
    while (off < n) {
        size_t k = w && w < n - off ? w : n - off;

        st = sr__hr_feed(r, p + off, k, &used);
        if (used > k)
            abort();
        *consumed += used;
        if (st != SR__HR_MORE)
            break;
        if (used != k)
            abort(); /* MORE takes everything */
        off += k;
    }
    if (st == SR__HR_MORE)
        st = sr__hr_eof(r) == SR__HR_DONE ? 2 : SR__HR_BAD;
    if (st != SR__HR_MORE && sr__hr_feed(r, "x", 1, &used) != SR__HR_MORE &&
        used)
        abort(); /* finished stays finished */
    if (r->body_len > keep || r->body_len > r->body_total)
        abort();
    if (r->body_len && strlen(r->body) > r->body_len)
        abort(); /* NUL-terminated at body_len (the body may hold NULs) */
    if (r->body_len && r->body[r->body_len] != '\0')
        abort();
    if (st == SR__HR_BAD && !r->why)
        abort();
    return st;
}

/* The public reader on p (whole, or a reader fed in pieces of w, then a
 * close) against the private one's verdict st and reply r. */
static void check_public(const sr__hreply *r, int st, const char *p,
                         size_t n, size_t w, size_t keep, int head)
{
    signalr_parsed_reply o;
    signalr_reply_reader *rd;
    signalr_err rc;
    size_t off = 0;
    int done = 0;

    if (w) {
        if (signalr_reply_reader_new(head, keep, &rd, NULL))
            abort();
        rc = SIGNALR_OK;
        while (!rc && !done && off < n) {
            size_t k = w < n - off ? w : n - off;

            rc = signalr_reply_reader_feed(rd, p + off, k, 0, &done, &o,
                                           NULL);
            off += k;
        }
        if (!rc && !done)
            rc = signalr_reply_reader_feed(rd, NULL, 0, 1, &done, &o, NULL);
        signalr_reply_reader_free(rd);
    } else {
        rc = signalr_reply_parse(p, n, head, 1, keep, &done, &o, NULL);
    }
    if (st == SR__HR_BAD) {
        if (rc != SIGNALR_EHTTP || done)
            abort();
        return;
    }
    if (rc || !done || o.status != r->status || o.body_len != r->body_len ||
        o.retry_after_s != r->retry_after_s ||
        strcmp(o.error_code, r->error_code) ||
        (o.body_len && memcmp(o.body, r->body, o.body_len)) ||
        (o.keep_alive && !r->keep_alive) ||
        o.truncated != (r->body_total > r->body_len))
        abort();
    signalr_free(o.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sr__hreply a, b; /* kept across runs: reuse is exercised */
    size_t w, keep, ca, cb;
    int head, sa, sb;
    const char *p;
    size_t n;

    if (size < 2)
        return 0;
    w = data[0] & 31;
    head = data[0] >> 7;
    keep = (size_t)data[1] * 4;
    p = (const char *)data + 2;
    n = size - 2;
    sa = read_all(&a, p, n, 0, keep, head, &ca);
    sb = read_all(&b, p, n, w ? w : 1, keep, head, &cb);
    if (sa != sb)
        abort();
    check_public(&a, sa, p, n, 0, keep, head);
    check_public(&a, sa, p, n, w ? w : 1, keep, head);
    if (sa == SR__HR_BAD)
        return 0;
    if (a.status != b.status || a.keep_alive != b.keep_alive || ca != cb ||
        a.body_len != b.body_len || a.body_total != b.body_total ||
        a.retry_after_s != b.retry_after_s ||
        strcmp(a.error_code, b.error_code) ||
        (a.body_len && memcmp(a.body, b.body, a.body_len)))
        abort();
    if (a.status < 200 || a.status > 999)
        abort();
    if (a.body_len != (a.body_total < keep ? a.body_total : keep))
        abort();
    return 0;
}
