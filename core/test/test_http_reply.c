/* test_http_reply.c - the HTTP/1.1 reply reader: known replies fed whole,
 * split at every byte and one byte at a time, the same answer each way. */
#include "harness.h"
#include "http_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOSE_ 2 /* want: DONE only once the peer closes */

typedef struct {
    const char *name;
    const char *in;        /* the bytes (NUL-free) */
    int head;              /* the request was HEAD */
    int want;              /* SR__HR_DONE, SR__HR_BAD, CLOSE_ or SR__HR_MORE */
    int status;
    int keep_alive;
    const char *body;      /* kept body (keep = 64) */
    const char *code;      /* x-ms-error-code */
    long retry_after;
    size_t extra;          /* bytes after the reply, not used */
} tcase;

static const tcase CASES[] = {
    {"202 with Content-Length 0",
     "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", 0, SR__HR_DONE,
     202, 1, "", "", -1, 0},
    {"nginx's 202",
     "HTTP/1.1 202 Accepted\r\nServer: nginx\r\nDate: Mon, 01 Dec 2026 "
     "10:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 0\r\n"
     "Connection: keep-alive\r\n\r\n", 0, SR__HR_DONE, 202, 1, "", "", -1, 0},
    {"no reason phrase", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", 0,
     SR__HR_DONE, 200, 1, "ok", "", -1, 0},
    {"LF-only line ends", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 0,
     SR__HR_DONE, 200, 1, "ok", "", -1, 0},
    {"error code and body",
     "HTTP/1.1 404 Not Found\r\nx-ms-error-code:  Warning.User.NotExisted "
     "\r\nContent-Length: 13\r\n\r\n{\"code\":\"x\"}\n", 0, SR__HR_DONE, 404, 1,
     "{\"code\":\"x\"}\n", "Warning.User.NotExisted", -1, 0},
    {"error code header name in any case",
     "HTTP/1.1 404 x\r\nX-MS-ERROR-CODE: E\r\ncontent-length: 0\r\n\r\n", 0,
     SR__HR_DONE, 404, 1, "", "E", -1, 0},
    {"Retry-After seconds",
     "HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
     0, SR__HR_DONE, 429, 1, "", "", 7, 0},
    {"Retry-After as a date: not read",
     "HTTP/1.1 429 x\r\nRetry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n"
     "Content-Length: 0\r\n\r\n", 0, SR__HR_DONE, 429, 1, "", "", -1, 0},
    {"Retry-After negative: not read",
     "HTTP/1.1 429 x\r\nRetry-After: -1\r\nContent-Length: 0\r\n\r\n", 0,
     SR__HR_DONE, 429, 1, "", "", -1, 0},
    {"Connection: close",
     "HTTP/1.1 503 x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz", 0,
     SR__HR_DONE, 503, 0, "z", "", -1, 0},
    {"Connection tokens listed",
     "HTTP/1.1 200 x\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n"
     "\r\n", 0, SR__HR_DONE, 200, 0, "", "", -1, 0},
    {"HTTP/1.0 closes by default",
     "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, SR__HR_DONE, 200, 0,
     "", "", -1, 0},
    {"HTTP/1.0 with keep-alive",
     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
     0, SR__HR_DONE, 200, 1, "", "", -1, 0},
    {"chunked",
     "HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
     "6;ext=1\r\n world\r\n0\r\n\r\n", 0, SR__HR_DONE, 400, 1, "hello world",
     "", -1, 0},
    {"chunked with trailers and hex in capitals",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nA\r\n"
     "0123456789\r\n0\r\nX-T: 1\r\n\r\n", 0, SR__HR_DONE, 200, 1,
     "0123456789", "", -1, 0},
    {"chunked beats Content-Length, and the socket is not kept",
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
     "\r\n2\r\nab\r\n0\r\n\r\n", 0, SR__HR_DONE, 200, 0, "ab", "", -1, 0},
    {"a coding other than chunked last: read to the close",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 0, CLOSE_, 200,
     0, "abc", "", -1, 0},
    {"no length: read to the close", "HTTP/1.1 200 OK\r\n\r\nuntil eof", 0,
     CLOSE_, 200, 0, "until eof", "", -1, 0},
    {"HEAD: no body whatever the length",
     "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 1, SR__HR_DONE, 200, 1,
     "", "", -1, 0},
    {"204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", 0, SR__HR_DONE,
     204, 1, "", "", -1, 0},
    {"304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n"
     "\r\n", 0, SR__HR_DONE, 304, 1, "", "", -1, 0},
    {"1xx heads passed over",
     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nx-ms-error-code:"
     " early\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", 0,
     SR__HR_DONE, 202, 1, "", "", -1, 0},
    {"bytes after the reply are not used",
     "HTTP/1.1 202 Accepted\r\nContent-Length: 1\r\n\r\nxHTTP/1.1", 0,
     SR__HR_DONE, 202, 1, "x", "", -1, 8},
    {"repeated equal Content-Length",
     "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok",
     0, SR__HR_DONE, 200, 1, "ok", "", -1, 0},
    {"lines without a colon are passed over",
     "HTTP/1.1 200 OK\r\nnonsense\r\n folded\r\nContent-Length: 0\r\n\r\n", 0,
     SR__HR_DONE, 200, 1, "", "", -1, 0},
    {"body past keep is counted, not kept",
     "HTTP/1.1 500 x\r\nContent-Length: 70\r\n\r\n"
     "0123456789012345678901234567890123456789012345678901234567890123456789",
     0, SR__HR_DONE, 500, 1,
     "0123456789012345678901234567890123456789012345678901234567890123", "",
     -1, 0},
    {"a long error code is cut",
     "HTTP/1.1 400 x\r\nx-ms-error-code: "
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nContent-Length: 0\r\n"
     "\r\n", 0, SR__HR_DONE, 400, 1, "",
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
     "AAAAAAAAAAAAAAAAAAAAAAAAA", -1, 0},
    /* names as long as a read one, or one letter off, are passed over */
    {"names of the read lengths that are other names",
     "HTTP/1.1 200 OK\r\nContent-Lengtx: 9\r\nConnectiom: close\r\n"
     "X-Ms-Error-Codf: E\r\nRetry-Aftex: 3\r\nTransfer-Encodinx: chunked"
     "\r\nContent-Length: 1\r\n\r\nz", 0, SR__HR_DONE, 200, 1, "z", "", -1,
     0},
    {"Connection tokens in any case, spaces and empty items",
     "HTTP/1.0 200 OK\r\nconnection: , Foo ,KEEP-ALIVE,\r\nContent-Length: 0"
     "\r\n\r\n", 0, SR__HR_DONE, 200, 1, "", "", -1, 0},
    {"close wins over keep-alive, in either order",
     "HTTP/1.0 200 OK\r\nCONNECTION: close\r\nConnection: Keep-Alive\r\n"
     "Content-Length: 0\r\n\r\n", 0, SR__HR_DONE, 200, 0, "", "", -1, 0},
    {"a token that only starts as close",
     "HTTP/1.1 200 OK\r\nConnection: closed, keep-alivex\r\n"
     "Content-Length: 0\r\n\r\n", 0, SR__HR_DONE, 200, 1, "", "", -1, 0},
    {"names and values around tabs and odd case",
     "HTTP/1.1 429 x\r\nRETRY-after:\t12\t\r\nx-Ms-ErRoR-cOdE:\t A.B \t\r\n"
     "TRANSFER-ENCODING: Chunked\r\n\r\n0\r\n\r\n", 0, SR__HR_DONE, 429, 1,
     "", "A.B", 12, 0},
    /* refused */
    {"HTTP/2 status line", "HTTP/2 200\r\n\r\n", 0, SR__HR_BAD, 0, 0, "", "",
     -1, 0},
    {"not HTTP at all", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 0, SR__HR_BAD, 0, 0, "",
     "", -1, 0},
    {"status not three digits", "HTTP/1.1 20 OK\r\n\r\n", 0, SR__HR_BAD, 0, 0,
     "", "", -1, 0},
    {"status with four digits", "HTTP/1.1 2000 OK\r\n\r\n", 0, SR__HR_BAD, 0,
     0, "", "", -1, 0},
    {"101 not asked for", "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0,
     SR__HR_BAD, 0, 0, "", "", -1, 0},
    {"Content-Length not digits",
     "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", 0, SR__HR_BAD, 0, 0,
     "", "", -1, 0},
    {"Content-Length negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
     0, SR__HR_BAD, 0, 0, "", "", -1, 0},
    {"Content-Lengths that disagree",
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", 0,
     SR__HR_BAD, 0, 0, "", "", -1, 0},
    {"Content-Length list that disagrees",
     "HTTP/1.1 200 OK\r\nContent-Length: 1,2\r\n\r\nok", 0, SR__HR_BAD, 0, 0,
     "", "", -1, 0},
    {"Content-Length past 2^62",
     "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", 0,
     SR__HR_BAD, 0, 0, "", "", -1, 0},
    {"chunk size not hex",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0,
     SR__HR_BAD, 0, 0, "", "", -1, 0},
    {"chunk size overflows",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "fffffffffffffffffff\r\n", 0, SR__HR_BAD, 0, 0, "", "", -1, 0},
    {"chunk longer than its size",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n"
     "\r\n", 0, SR__HR_BAD, 0, 0, "", "", -1, 0},
    /* incomplete: what a close then means */
    {"cut in the head", "HTTP/1.1 202 Accep", 0, SR__HR_MORE, 0, 0, "", "",
     -1, 0},
    {"cut in the body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 0,
     SR__HR_MORE, 200, 1, "ab", "", -1, 0},
    {"cut in a chunked body",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 0,
     SR__HR_MORE, 200, 1, "ab", "", -1, 0},
    {"cut before the last chunk",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", 0,
     SR__HR_MORE, 200, 1, "ab", "", -1, 0},
};

/* Feed c->in in pieces of `step` bytes (0: split once at `at`). */
static int run(sr__hreply *r, const tcase *c, size_t at, size_t step,
               size_t *unused)
{
    const char *p = c->in;
    size_t n = strlen(p), off = 0, used = 0;
    int st = SR__HR_MORE;

    sr__hr_init(r, 64, c->head);
    *unused = 0;
    while (off < n) {
        size_t k = step ? step : (off < at ? at - off : n - off);

        if (k > n - off)
            k = n - off;
        st = sr__hr_feed(r, p + off, k, &used);
        if (st != SR__HR_MORE) {
            *unused = n - off - used;
            return st;
        }
        if (used != k)
            return 99; /* MORE must take everything */
        off += k;
    }
    return st;
}

static void check_case(const tcase *c)
{
    sr__hreply r;
    size_t n = strlen(c->in), at, unused;
    char what[160];

    memset(&r, 0, sizeof(r));
    for (at = 0; at <= n + 1; at++) {
        /* at <= n: split once there; at == n + 1: a byte at a time */
        int st = at <= n ? run(&r, c, at, 0, &unused)
                         : run(&r, c, 0, 1, &unused);
        int want = c->want == CLOSE_ ? SR__HR_MORE : c->want;

        snprintf(what, sizeof(what), "%s (split at %lu)", c->name,
                 (unsigned long)at);
        CHECK(st == want, what);
        if (st != want)
            break;
        if (c->want == CLOSE_) {
            CHECK(sr__hr_eof(&r) == SR__HR_DONE, what);
            CHECK(!r.keep_alive, what);
        } else if (c->want == SR__HR_MORE) {
            CHECK(sr__hr_eof(&r) == SR__HR_BAD, what);
            CHECK(r.why && strstr(r.why, "closed"), what);
        }
        if (c->want == SR__HR_BAD) {
            CHECK(r.why != NULL, what);
            continue;
        }
        CHECK(r.status == c->status, what);
        CHECK_STR(r.body_len ? r.body : "", c->body, what);
        CHECK(strlen(c->body) == r.body_len, what);
        if (c->want == SR__HR_MORE)
            continue;
        CHECK(r.keep_alive == c->keep_alive, what);
        CHECK_STR(r.error_code, c->code, what);
        CHECK(r.retry_after_s == c->retry_after, what);
        CHECK(unused == c->extra, what);
    }
    sr__hr_free(&r);
}

static void test_reuse(void)
{
    /* one reader, many replies: each starts clean */
    sr__hreply r;
    size_t used;
    const char *a = "HTTP/1.1 429 x\r\nRetry-After: 3\r\nx-ms-error-code: E"
                    "\r\nContent-Length: 3\r\n\r\nabc";
    const char *b = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";

    memset(&r, 0, sizeof(r));
    sr__hr_init(&r, 64, 0);
    CHECK(sr__hr_feed(&r, a, strlen(a), &used) == SR__HR_DONE, "first");
    CHECK(r.retry_after_s == 3 && !strcmp(r.error_code, "E"), "first's");
    sr__hr_init(&r, 64, 0);
    CHECK(sr__hr_feed(&r, b, strlen(b), &used) == SR__HR_DONE, "second");
    CHECK(r.status == 202 && r.retry_after_s == -1 && !r.error_code[0] &&
          r.body_len == 0 && r.seen == strlen(b), "second starts clean");
    CHECK(sr__hr_feed(&r, "x", 1, &used) == SR__HR_DONE && used == 0,
          "done stays done");
    sr__hr_init(&r, 64, 0);
    CHECK(sr__hr_eof(&r) == SR__HR_BAD && r.seen == 0 &&
          strstr(r.why, "before a reply"), "a close before any byte");
    sr__hr_free(&r);
    sr__hr_free(&r); /* twice: fine */
}

static void test_bounds(void)
{
    /* a head of SR__HR_MAX_HEAD bytes passes; one more byte does not */
    size_t big = SR__HR_MAX_HEAD + 16, used, fill;
    char *p = malloc(big + 64);
    sr__hreply r;
    int pass;

    memset(&r, 0, sizeof(r));
    for (pass = 0; p && pass < 2; pass++) {
        const char *pre = "HTTP/1.1 200 OK\r\nX: ";
        const char *post = "\r\nContent-Length: 0\r\n\r\n";
        size_t at = strlen(pre);
        size_t step;

        fill = SR__HR_MAX_HEAD - strlen(pre) - strlen(post) + (size_t)pass;
        memcpy(p, pre, at);
        memset(p + at, 'a', fill);
        memcpy(p + at + fill, post, strlen(post));
        for (step = 1000; step <= SR__HR_MAX_HEAD + 100; step += 64000) {
            size_t off = 0, n = at + fill + strlen(post);
            int st = SR__HR_MORE;

            sr__hr_init(&r, 64, 0);
            while (off < n && st == SR__HR_MORE) {
                size_t k = n - off < step ? n - off : step;

                st = sr__hr_feed(&r, p + off, k, &used);
                off += k;
            }
            CHECK(st == (pass ? SR__HR_BAD : SR__HR_DONE),
                  pass ? "head one past the bound" : "head at the bound");
        }
    }
    /* a chunk line past the bound */
    sr__hr_init(&r, 64, 0);
    {
        const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "1;";
        int st = sr__hr_feed(&r, h, strlen(h), &used);

        memset(p, 'e', big);
        while (st == SR__HR_MORE)
            st = sr__hr_feed(&r, p, 4096, &used);
        CHECK(st == SR__HR_BAD && strstr(r.why, "too long"),
              "chunk extension past the bound");
    }
    sr__hr_free(&r);
    free(p);
}

/* The public faces: signalr_reply_parse on whole bytes, and a
 * signalr_reply_reader fed in parts. */
/* signalr_reply_parse on a C string */
static signalr_err parse(const char *s, int head, int eof, size_t keep,
                         int *done, signalr_parsed_reply *o, signalr_error *e)
{
    return signalr_reply_parse(s, strlen(s), head, eof, keep, done, o, e);
}

static void test_public(void)
{
    const char *rep = "HTTP/1.1 100 Continue\r\n\r\n"
                      "HTTP/1.1 429 Too Many Requests\r\n"
                      "x-ms-error-code: Error.Throttled\r\n"
                      "Retry-After: 7\r\nContent-Length: 5\r\n\r\nslow!";
    signalr_parsed_reply o;
    signalr_reply_reader *rd;
    signalr_error e;
    size_t i, n = strlen(rep);
    int done = -1;

    CHECK(signalr_reply_parse(rep, n - 1, 0, 0, 1024, &done, &o, &e) ==
              SIGNALR_OK && done == 0, "a part of a reply: more wanted");
    CHECK(signalr_reply_parse(rep, n - 1, 0, 1, 1024, &done, &o, &e) ==
              SIGNALR_EHTTP && !done && e.sent &&
              strstr(e.msg, "malformed reply: the connection closed"),
          "a close in the body: EHTTP, sent");
    CHECK(signalr_reply_parse(rep, n, 0, 0, 1024, &done, &o, &e) ==
              SIGNALR_OK && done == 1 && o.status == 429 && o.keep_alive &&
              !o.extra && o.retry_after_s == 7 &&
              !strcmp(o.error_code, "Error.Throttled") && o.body_len == 5 &&
              !memcmp(o.body, "slow!", 5) && !o.truncated,
          "a whole reply, the 1xx passed over");
    signalr_free(o.body);
    CHECK(parse("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\nHTTP", 0,
                0, 1024, &done, &o, &e) == SIGNALR_OK && done && o.status == 202 &&
              o.extra && !o.keep_alive && !o.body,
          "bytes past the reply: extra, not kept alive");
    CHECK(parse("SMTP ready\r\n\r\n", 0, 0, 1024, &done, &o, &e) ==
              SIGNALR_EHTTP &&
              strstr(e.msg, "malformed reply"),
          "not HTTP: EHTTP");
    /* a head with faults: the first one is told, once the head is whole */
    CHECK(parse("HTTP/1.1 2x2 Accepted\r\nContent-Length: x\r\n", 0, 0,
                1024, &done, &o, &e) == SIGNALR_OK && !done,
          "a faulty head not yet whole: more wanted");
    CHECK(parse("HTTP/1.1 2x2 Accepted\r\nContent-Length: x\r\n", 0, 1,
                1024, &done, &o, &e) == SIGNALR_EHTTP &&
              !strcmp(e.msg, "malformed reply: the connection closed in the "
                             "middle of the reply"),
          "a faulty head cut by a close: the close is told");
    CHECK(parse("HTTP/1.1 2x2 Accepted\r\nContent-Length: x\r\n\r\n", 0, 0,
                1024, &done, &o, &e) == SIGNALR_EHTTP &&
              !strcmp(e.msg, "malformed reply: malformed status code"),
          "the status line's fault before the length's");
    CHECK(parse("HTTP/1.1 202 Accepted\r\nContent-Length: 1\r\n"
                "Content-Length: 2\r\nx-ms-error-code: E\r\n\r\n", 0, 0,
                1024, &done, &o, &e) == SIGNALR_EHTTP &&
              !strcmp(e.msg, "malformed reply: malformed Content-Length"),
          "lengths that disagree");
    CHECK(parse("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n", 1,
                0, 1024, &done, &o, &e) == SIGNALR_OK && done && o.status == 404 &&
              !o.body,
          "HEAD: no body follows");
    CHECK(parse("HTTP/1.1 200 OK\r\n\r\nabc", 0, 1, 2, &done, &o, &e) ==
              SIGNALR_OK && done &&
              !o.keep_alive && o.body_len == 2 && !memcmp(o.body, "ab", 2) &&
              o.truncated,
          "a body to the close, kept up to keep, said to be cut");
    signalr_free(o.body);
    /* fed a byte at a time */
    CHECK(signalr_reply_reader_new(0, 1024, &rd, &e) == SIGNALR_OK,
          "reader made");
    for (i = 0; i < n; i++) {
        if (signalr_reply_reader_feed(rd, rep + i, 1, 0, &done, &o, &e) ||
            done != (i == n - 1))
            break;
    }
    CHECK(i == n && o.status == 429 && o.body_len == 5 &&
              !memcmp(o.body, "slow!", 5),
          "the reader, a byte at a time");
    signalr_free(o.body);
    CHECK(signalr_reply_reader_feed(rd, "x", 1, 0, &done, &o, &e) ==
              SIGNALR_EINVAL && strstr(e.msg, "one per reply"),
          "a reader reads one reply");
    signalr_reply_reader_free(rd);
    signalr_reply_reader_free(NULL);
    CHECK(signalr_reply_reader_new(1, 64, &rd, &e) == SIGNALR_OK &&
              signalr_reply_reader_feed(rd, "HTTP/1.1 200", 12, 0, &done, &o,
                                        &e) == SIGNALR_OK && !done &&
              signalr_reply_reader_feed(rd, NULL, 0, 1, &done, &o, &e) ==
                  SIGNALR_EHTTP,
          "the reader: a close in the head");
    signalr_reply_reader_free(rd);
}

int main(void)
{
    size_t i;

    for (i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++)
        check_case(&CASES[i]);
    test_reuse();
    test_bounds();
    test_public();
    return t_done("test_http_reply");
}
