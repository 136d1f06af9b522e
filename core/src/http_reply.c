/* http_reply.c - a sans-I/O reader of HTTP/1.1 replies (RFC 9112): the
 * status line, the headers the transports act on (x-ms-error-code,
 * Retry-After, Content-Length, Transfer-Encoding, Connection), bodies
 * framed by length, by chunks or by the close, 1xx heads passed over.
 *
 * Caveats: lenient where libcurl is (LF-only line ends, header lines
 * without a colon ignored, chunk extensions and trailers skipped), strict
 * where a mistake would mis-frame the next reply on a kept connection
 * (Content-Length values that disagree or are not digits, chunk sizes that
 * are not hex or overflow, heads past SR__HR_MAX_HEAD). */
#include "http_reply.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum {
    ST_HEAD = 0,   /* reading a head (the status line and the headers) */
    ST_LENGTH,     /* a body of r->left bytes */
    ST_CLOSE,      /* a body that ends with the connection */
    ST_CHUNK_SIZE, /* a chunk-size line */
    ST_CHUNK_DATA, /* r->left bytes of a chunk */
    ST_CHUNK_END,  /* the line end after a chunk's data */
    ST_TRAILER,    /* trailer lines up to an empty one */
    ST_DONE,
    ST_BAD
};

/* The most a Content-Length or chunk size may say (2^62): far beyond any
 * reply, and no overflow in the arithmetic. */
#define MAX_SIZE (1ULL << 62)

void sr__hr_init(sr__hreply *r, size_t keep, int no_body)
{
    r->keep = keep;
    r->no_body = no_body;
    r->status = 0;
    r->minor = 1;
    r->keep_alive = 0;
    r->error_code[0] = '\0';
    r->retry_after_s = -1;
    r->body_len = 0;
    if (r->body)
        r->body[0] = '\0';
    r->body_total = 0;
    r->seen = 0;
    r->why = NULL;
    r->state = ST_HEAD;
    r->framing = 0;
    r->left = 0;
    r->line_len = 0;
}

void sr__hr_free(sr__hreply *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->line);
    memset(r, 0, sizeof(*r));
}

static int bad(sr__hreply *r, const char *why)
{
    r->state = ST_BAD;
    r->why = why;
    return SR__HR_BAD;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Case-insensitive equality of s[0..n) and the lower-case literal lit. */
static int is(const char *s, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];

        /* lower(c), without a branch; a NUL in s ends lit too early */
        c += (c - 'A' < 26u) << 5;
        if (!c || c != (unsigned char)lit[i])
            return 0;
    }
    return !lit[n];
}

static int ows(int c)
{
    return c == ' ' || c == '\t';
}

/* Trim optional white space from both ends of s[0..*n). */
static const char *trim(const char *s, size_t *n)
{
    while (*n && ows((unsigned char)*s)) {
        s++;
        (*n)--;
    }
    while (*n && ows((unsigned char)s[*n - 1]))
        (*n)--;
    return s;
}

/* Append p[0..n) to r->line; -1 when the line would pass the bound or
 * memory runs out. */
static int line_add(sr__hreply *r, const char *p, size_t n)
{
    if (r->line_len + n > SR__HR_MAX_HEAD)
        return -1;
    if (r->line_len + n > r->line_cap) {
        size_t cap = r->line_cap ? r->line_cap : 256;
        char *nl;

        while (cap < r->line_len + n)
            cap *= 2;
        nl = realloc(r->line, cap);
        if (!nl)
            return -1;
        r->line = nl;
        r->line_cap = cap;
    }
    memcpy(r->line + r->line_len, p, n);
    r->line_len += n;
    return 0;
}

/* Keep what fits of a body piece; the rest is counted only. */
static void take(sr__hreply *r, const char *p, size_t n)
{
    size_t room = r->keep > r->body_len ? r->keep - r->body_len : 0;
    size_t k = n < room ? n : room;

    r->body_total += n;
    if (!k)
        return;
    if (r->body_len + k + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 256;
        char *nb;

        while (cap < r->body_len + k + 1)
            cap *= 2;
        nb = realloc(r->body, cap);
        if (!nb) {
            r->keep = r->body_len; /* keep what we have: the status counts */
            return;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, k);
    r->body_len += k;
    r->body[r->body_len] = '\0';
}

/* Where the head in s[0..n) ends (just past its empty line), scanning for
 * line ends from `from`; 0 while it has not ended. */
static size_t head_end(const char *s, size_t n, size_t from)
{
    const char *q = s + from, *end = s + n;

    while (q < end && (q = memchr(q, '\n', (size_t)(end - q)))) {
        q++;
        if (q < end && *q == '\n')
            return (size_t)(q + 1 - s);
        if (q + 1 < end && q[0] == '\r' && q[1] == '\n')
            return (size_t)(q + 2 - s);
    }
    return 0;
}

/* A Content-Length value: one or more equal lists of digits ("5, 5" is
 * RFC 9110 8.6's repeated field); -1 when malformed or too big. */
static long long content_length(const char *v, size_t n)
{
    long long len = -1;
    size_t i = 0;

    while (i <= n) {
        size_t a = i, k;
        unsigned long long x = 0;
        const char *item;

        while (i < n && v[i] != ',')
            i++;
        k = i - a;
        item = trim(v + a, &k);
        if (!k)
            return -1;
        for (a = 0; a < k; a++) {
            if (item[a] < '0' || item[a] > '9')
                return -1;
            x = x * 10 + (unsigned)(item[a] - '0');
            if (x > MAX_SIZE)
                return -1;
        }
        if (len >= 0 && (unsigned long long)len != x)
            return -1;
        len = (long long)x;
        i++; /* past the comma (or the end) */
    }
    return len;
}

/* 1 when the last coding in a Transfer-Encoding value is "chunked". */
static int last_is_chunked(const char *v, size_t n)
{
    size_t i = n, k;
    const char *t;

    while (i && v[i - 1] != ',')
        i--;
    k = n - i;
    t = trim(v + i, &k);
    return is(t, k, "chunked");
}

/* The tokens of a Connection value: *close set when one is "close",
 * *ka when one is "keep-alive" (each left as it was otherwise). */
static void connection_tokens(const char *v, size_t n, int *close, int *ka)
{
    size_t i = 0;

    while (i < n) {
        size_t a = i, k;
        const char *t;

        while (i < n && v[i] != ',')
            i++;
        k = i - a;
        t = trim(v + a, &k);
        if (k == 5 && is(t, k, "close"))
            *close = 1;
        else if (k == 10 && is(t, k, "keep-alive"))
            *ka = 1;
        i++;
    }
}

/* A Retry-After value in seconds (an HTTP-date is not read: -1). */
static long retry_after(const char *v, size_t n)
{
    long s = 0;
    size_t i;

    if (!n)
        return -1;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (s < 100000000L) /* clamp: years are as good as forever */
            s = s * 10 + (v[i] - '0');
    }
    return s;
}

/* Read the head at the start of s[0..n) when it ends there (with its
 * empty line): 0 with *e its length, or -1 (bad); 1 when it has not ended
 * in s[0..n), and then r is left as it was.  What it reads goes into r
 * only once the end is found: the first fault found is the one told, as
 * a read that stops there would tell it. */
static int parse_head(sr__hreply *r, const char *s, size_t n, size_t *e)
{
    const char *end = s + n, *line = s, *nl, *code = NULL, *why = NULL;
    size_t code_len = 0;
    long long cl = -1;
    long retry = -1;
    int te = 0, chunked = 0, close = 0, ka = 0, first = 1, status = -1;
    int minor = 1;

    for (;; line = nl + 1) {
        size_t len, nlen, vlen;
        const char *colon, *v;

        nl = line < end ? memchr(line, '\n', (size_t)(end - line)) : NULL;
        if (!nl)
            return 1; /* the head goes on past s[0..n) */
        len = (size_t)(nl - line);
        if (len && line[len - 1] == '\r')
            len--;
        if (first) {
            /* HTTP-version SP 3DIGIT [SP reason] (RFC 9112 4) */
            first = 0;
            if (len < 12 || memcmp(line, "HTTP/1.", 7) || line[7] < '0' ||
                line[7] > '9' || line[8] != ' ')
                why = "not an HTTP/1.x status line";
            else if (line[9] < '1' || line[9] > '9' || line[10] < '0' ||
                     line[10] > '9' || line[11] < '0' || line[11] > '9' ||
                     (len > 12 && line[12] != ' '))
                why = "malformed status code";
            else {
                minor = line[7] - '0';
                status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
                         (line[11] - '0');
            }
            continue;
        }
        if (!len)
            break; /* the empty line: the head is over */
        if (why)
            continue; /* at fault already: only its end is looked for */
        colon = memchr(line, ':', len);
        if (!colon || colon == line || ows((unsigned char)line[0]))
            continue; /* not a field (or obsolete folding): passed over */
        nlen = (size_t)(colon - line);
        vlen = len - nlen - 1;
        /* the five names read differ in length: one comparison a line,
         * and most lines are passed over on their length alone */
        switch (nlen) {
        case 14:
            if (!is(line, nlen, "content-length"))
                break;
            v = trim(colon + 1, &vlen);
            {
                long long x = content_length(v, vlen);

                if (x < 0 || (cl >= 0 && x != cl))
                    why = "malformed Content-Length";
                else
                    cl = x;
            }
            break;
        case 17:
            if (!is(line, nlen, "transfer-encoding"))
                break;
            v = trim(colon + 1, &vlen);
            te = 1;
            chunked = last_is_chunked(v, vlen);
            break;
        case 10:
            if (!is(line, nlen, "connection"))
                break;
            v = trim(colon + 1, &vlen);
            connection_tokens(v, vlen, &close, &ka);
            break;
        case 15:
            if (!is(line, nlen, "x-ms-error-code"))
                break;
            code = trim(colon + 1, &vlen);
            code_len = vlen;
            break;
        case 11:
            if (!is(line, nlen, "retry-after"))
                break;
            v = trim(colon + 1, &vlen);
            retry = retry_after(v, vlen);
            break;
        default:
            break;
        }
    }
    *e = (size_t)(nl + 1 - s);
    if (*e > SR__HR_MAX_HEAD)
        return bad(r, "reply head too large");
    if (code_len >= sizeof(r->error_code))
        code_len = sizeof(r->error_code) - 1;
    if (code)
        memcpy(r->error_code, code, code_len);
    r->error_code[code_len] = '\0';
    r->retry_after_s = retry;
    if (status >= 0) {
        r->minor = minor;
        r->status = status;
    }
    if (why)
        return bad(r, why);
    if (r->status >= 100 && r->status < 200) {
        if (r->status == 101)
            return bad(r, "101 Switching Protocols, which was not asked "
                          "for"), -1;
        return 0; /* interim: the final head follows */
    }
    /* RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only on keep-alive */
    r->keep_alive = r->minor >= 1 ? !close : ka && !close;
    if (r->no_body || r->status == 204 || r->status == 304) {
        r->state = ST_DONE;
    } else if (te && chunked) {
        /* RFC 9112 6.3: chunked wins over a Content-Length, and such a
         * reply may be an attack on framing: do not reuse the socket */
        if (cl >= 0)
            r->keep_alive = 0;
        r->state = ST_CHUNK_SIZE;
    } else if (te) {
        r->keep_alive = 0;
        r->state = ST_CLOSE;
    } else if (cl >= 0) {
        r->left = (unsigned long long)cl;
        r->state = cl ? ST_LENGTH : ST_DONE;
    } else {
        r->keep_alive = 0;
        r->state = ST_CLOSE;
    }
    r->framing = r->state;
    return 0;
}

/* The next line of a chunked body from p[*i..n): 1 with *s, *len set (no
 * line end), 0 when more bytes are needed, -1 when too long. */
static int next_line(sr__hreply *r, const char *p, size_t n, size_t *i,
                     const char **s, size_t *len)
{
    const char *nl = memchr(p + *i, '\n', n - *i);
    size_t k;

    if (!nl) {
        if (line_add(r, p + *i, n - *i))
            return -1;
        *i = n;
        return 0;
    }
    k = (size_t)(nl - (p + *i));
    if (r->line_len) {
        if (line_add(r, p + *i, k))
            return -1;
        *s = r->line;
        *len = r->line_len;
        r->line_len = 0;
    } else {
        *s = p + *i;
        *len = k;
    }
    *i += k + 1;
    if (*len && (*s)[*len - 1] == '\r')
        (*len)--;
    return 1;
}

/* chunk-size [ chunk-ext ] (RFC 9112 7.1): -1 when not a size. */
static long long chunk_size(const char *s, size_t n)
{
    unsigned long long x = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        int c = lower((unsigned char)s[i]), d;

        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            break;
        x = x * 16 + (unsigned)d;
        if (x > MAX_SIZE)
            return -1;
    }
    if (!i)
        return -1;
    while (i < n && ows((unsigned char)s[i]))
        i++;
    if (i < n && s[i] != ';')
        return -1;
    return (long long)x;
}

int sr__hr_feed(sr__hreply *r, const char *p, size_t n, size_t *used)
{
    size_t i = 0;

    if (r->state == ST_DONE || r->state == ST_BAD) {
        *used = 0;
        return r->state == ST_DONE ? SR__HR_DONE : SR__HR_BAD;
    }
    r->seen += n;
    while (i < n && r->state != ST_DONE && r->state != ST_BAD) {
        switch (r->state) {
        case ST_HEAD: {
            size_t e = 0;
            int got;

            /* the whole head in this piece: read it in place */
            if (!r->line_len && (got = parse_head(r, p + i, n - i, &e)) <= 0) {
                if (!got)
                    i += e;
                break;
            }
            {
                /* a head split across pieces: gathered in r->line, at
                 * most SR__HR_MAX_HEAD of it */
                size_t from = r->line_len >= 2 ? r->line_len - 2 : 0;
                size_t had = r->line_len, k = n - i;

                if (k > SR__HR_MAX_HEAD - had)
                    k = SR__HR_MAX_HEAD - had;
                if (!k || line_add(r, p + i, k)) {
                    bad(r, "reply head too large");
                    break;
                }
                e = head_end(r->line, r->line_len, from);
                if (!e && k < n - i) {
                    bad(r, "reply head too large");
                    break;
                }
                if (!e) {
                    i = n;
                    break;
                }
                r->line_len = 0;
                i += e - had;
                parse_head(r, r->line, e, &e); /* it ends at e */
            }
            break;
        }
        case ST_LENGTH:
        case ST_CHUNK_DATA: {
            size_t k = n - i;

            if (k > r->left)
                k = (size_t)r->left;
            take(r, p + i, k);
            i += k;
            r->left -= k;
            if (!r->left)
                r->state = r->state == ST_LENGTH ? ST_DONE : ST_CHUNK_END;
            break;
        }
        case ST_CLOSE:
            take(r, p + i, n - i);
            i = n;
            break;
        default: { /* the line states of a chunked body */
            const char *s = NULL;
            size_t len = 0;
            int got = next_line(r, p, n, &i, &s, &len);

            if (got < 0) {
                bad(r, "chunk line too long");
            } else if (!got) {
                break;
            } else if (r->state == ST_CHUNK_SIZE) {
                long long x = chunk_size(s, len);

                if (x < 0) {
                    bad(r, "malformed chunk size");
                } else if (!x) {
                    r->state = ST_TRAILER;
                } else {
                    r->left = (unsigned long long)x;
                    r->state = ST_CHUNK_DATA;
                }
            } else if (r->state == ST_CHUNK_END) {
                if (len)
                    bad(r, "chunk data longer than its size");
                else
                    r->state = ST_CHUNK_SIZE;
            } else if (!len) { /* ST_TRAILER: the empty line ends it */
                r->state = ST_DONE;
            }
            break;
        }
        }
    }
    *used = i;
    if (r->state == ST_BAD)
        return SR__HR_BAD;
    if (r->state == ST_DONE) {
        r->seen -= n - i;
        return SR__HR_DONE;
    }
    return SR__HR_MORE;
}

int sr__hr_eof(sr__hreply *r)
{
    if (r->state == ST_DONE)
        return SR__HR_DONE;
    if (r->state == ST_BAD)
        return SR__HR_BAD;
    if (r->state == ST_CLOSE) {
        r->state = ST_DONE;
        r->keep_alive = 0;
        return SR__HR_DONE;
    }
    return bad(r, r->seen ? "the connection closed in the middle of the "
                            "reply"
                          : "the connection closed before a reply");
}

struct signalr_reply_reader {
    sr__hreply r;
    int over; /* the reply was handed out, or refused */
};

/* One feed of r's reader: the outcome of signalr_reply_reader_feed. */
static signalr_err reader_feed(sr__hreply *r, const char *p, size_t n,
                               int eof, int *done, signalr_parsed_reply *out,
                               signalr_error *err)
{
    size_t used = 0;
    int st = n ? sr__hr_feed(r, p, n, &used) : SR__HR_MORE;

    if (st == SR__HR_MORE && eof)
        st = sr__hr_eof(r);
    if (st == SR__HR_MORE)
        return SIGNALR_OK;
    if (st != SR__HR_DONE) {
        signalr_err rc = sr__fail(err, SIGNALR_EHTTP, "malformed reply: %s",
                                  r->why ? r->why : "unreadable");

        if (err)
            err->sent = 1;
        return rc;
    }
    *done = 1;
    out->status = r->status;
    out->extra = used < n;
    out->keep_alive = r->keep_alive && !out->extra;
    memcpy(out->error_code, r->error_code, sizeof(out->error_code));
    out->retry_after_s = r->retry_after_s;
    out->body = r->body_len ? r->body : NULL;
    out->body_len = r->body_len;
    out->truncated = r->body_total > r->body_len;
    if (out->body) {
        /* the caller's now */
        r->body = NULL;
        r->body_len = r->body_cap = 0;
    }
    return SIGNALR_OK;
}

signalr_err signalr_reply_reader_new(int head, size_t keep,
                                     signalr_reply_reader **out,
                                     signalr_error *err)
{
    signalr_reply_reader *r = calloc(1, sizeof(*r));

    sr__ok(err);
    *out = NULL;
    if (!r)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    sr__hr_init(&r->r, keep, head);
    *out = r;
    return SIGNALR_OK;
}

signalr_err signalr_reply_reader_feed(signalr_reply_reader *r, const char *p,
                                      size_t n, int eof, int *done,
                                      signalr_parsed_reply *out,
                                      signalr_error *err)
{
    signalr_err rc;

    sr__ok(err);
    *done = 0;
    memset(out, 0, sizeof(*out));
    if (!r || (!p && n))
        return sr__fail(err, SIGNALR_EINVAL, "no reader or no bytes given");
    if (r->over)
        return sr__fail(err, SIGNALR_EINVAL, "this reader's reply was "
                        "read already: make one per reply");
    rc = reader_feed(&r->r, p, n, eof, done, out, err);
    if (rc || *done)
        r->over = 1;
    return rc;
}

void signalr_reply_reader_free(signalr_reply_reader *r)
{
    if (!r)
        return;
    sr__hr_free(&r->r);
    free(r);
}

signalr_err signalr_reply_parse(const char *p, size_t n, int head, int eof,
                                size_t keep, int *done,
                                signalr_parsed_reply *out, signalr_error *err)
{
    sr__hreply r;
    signalr_err rc;

    sr__ok(err);
    *done = 0;
    memset(out, 0, sizeof(*out));
    if (!p && n)
        return sr__fail(err, SIGNALR_EINVAL, "no bytes given");
    memset(&r, 0, sizeof(r));
    sr__hr_init(&r, keep, head);
    rc = reader_feed(&r, p, n, eof, done, out, err);
    sr__hr_free(&r);
    return rc;
}
