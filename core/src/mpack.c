/* mpack.c - MessagePack: a handful of header writers that count or store
 * bytes, the varint frame prefix, and a cursor reader that allocates
 * nothing (a reader that allocated by the counts a message declares would
 * let six bytes from the network ask for gigabytes).  Shared by the
 * service protocol and the hub protocol through mpack.h. */
#include "mpack.h"

#include <stdlib.h>
#include <string.h>

/* ===== writing ===== */

int sr__mpw_room(sr__mpw *w, size_t n)
{
    if (!w->grow || w->len + n <= w->cap)
        return !w->oom;
    {
        size_t cap = w->cap ? w->cap : 256;
        unsigned char *q;
        while (cap < w->len + n)
            cap *= 2;
        q = realloc(w->p, cap);
        if (!q) {
            w->oom = 1;
            return 0;
        }
        w->p = q;
        w->cap = cap;
    }
    return 1;
}

void sr__mpw_be(sr__mpw *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    int i;

    for (i = bytes - 1; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    sr__mpw_raw(w, b, (size_t)bytes);
}

void sr__mpw_uint(sr__mpw *w, uint64_t v)
{
    if (v < 128) {
        sr__mpw_byte(w, (unsigned char)v);
    } else if (v <= 0xff) {
        sr__mpw_byte(w, 0xcc);
        sr__mpw_be(w, v, 1);
    } else if (v <= 0xffff) {
        sr__mpw_byte(w, 0xcd);
        sr__mpw_be(w, v, 2);
    } else if (v <= 0xffffffffu) {
        sr__mpw_byte(w, 0xce);
        sr__mpw_be(w, v, 4);
    } else {
        sr__mpw_byte(w, 0xcf);
        sr__mpw_be(w, v, 8);
    }
}

void sr__mpw_int(sr__mpw *w, int64_t v)
{
    if (v >= 0) {
        sr__mpw_uint(w, (uint64_t)v);
    } else if (v >= -32) {
        sr__mpw_byte(w, (unsigned char)(0xe0 | (v + 32)));
    } else if (v >= INT8_MIN) {
        sr__mpw_byte(w, 0xd0);
        sr__mpw_be(w, (uint64_t)v, 1);
    } else if (v >= INT16_MIN) {
        sr__mpw_byte(w, 0xd1);
        sr__mpw_be(w, (uint64_t)v, 2);
    } else if (v >= INT32_MIN) {
        sr__mpw_byte(w, 0xd2);
        sr__mpw_be(w, (uint64_t)v, 4);
    } else {
        sr__mpw_byte(w, 0xd3);
        sr__mpw_be(w, (uint64_t)v, 8);
    }
}

void sr__mpw_nil(sr__mpw *w)
{
    sr__mpw_byte(w, 0xc0);
}

void sr__mpw_bool(sr__mpw *w, int v)
{
    sr__mpw_byte(w, v ? 0xc3 : 0xc2);
}

void sr__mpw_double(sr__mpw *w, double d)
{
    uint64_t bits;

    memcpy(&bits, &d, sizeof bits);
    sr__mpw_byte(w, 0xcb);
    sr__mpw_be(w, bits, 8);
}

void sr__mpw_head_wide(sr__mpw *w, size_t n, unsigned char c8,
                       unsigned char c16, unsigned char c32)
{
    if (c8 && n <= 0xff) {
        sr__mpw_byte(w, c8);
        sr__mpw_be(w, n, 1);
    } else if (n <= 0xffff) {
        sr__mpw_byte(w, c16);
        sr__mpw_be(w, n, 2);
    } else {
        sr__mpw_byte(w, c32);
        sr__mpw_be(w, n, 4);
    }
}

void sr__mpw_strz(sr__mpw *w, const char *s)
{
    sr__mpw_str(w, s, s ? strlen(s) : 0);
}

size_t sr__varint_len(size_t n)
{
    size_t k = 1;

    while (n >= 0x80) {
        n >>= 7;
        k++;
    }
    return k;
}

void sr__mpw_varint(sr__mpw *w, size_t n)
{
    while (n >= 0x80) {
        sr__mpw_byte(w, (unsigned char)(n | 0x80));
        n >>= 7;
    }
    sr__mpw_byte(w, (unsigned char)n);
}

int sr__varint_read(const unsigned char *buf, size_t len, uint64_t *n,
                    size_t *k)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < 5; i++) {
        if (i == len)
            return 0;
        v |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
        if (!(buf[i] & 0x80)) {
            *n = v;
            *k = i + 1;
            return 1;
        }
    }
    return -1;
}

signalr_err sr__mp_frame(sr__mp_body_fn fn, const void *ctx, size_t max,
                         char **out, size_t *out_len, signalr_error *err)
{
    /* the body is written after room for the longest prefix (5 bytes);
     * the prefix then goes just before it and the frame moves down */
    sr__mpw w = { NULL, 0, 0, 1, 0 };
    size_t body, k;

    if (!sr__mpw_room(&w, 5))
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    w.len = 5;
    fn(&w, ctx);
    if (!w.oom)
        sr__mpw_room(&w, 1); /* the NUL */
    if (w.oom) {
        free(w.p);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    body = w.len - 5;
    if (body > max) {
        free(w.p);
        return sr__fail(err, SIGNALR_ETOOBIG, "the message is %zu bytes; "
                        "the limit is %zu", body, max);
    }
    k = sr__varint_len(body);
    {
        sr__mpw pre = { NULL, 0, 0, 0, 0 };

        pre.p = w.p + 5 - k;
        sr__mpw_varint(&pre, body);
    }
    memmove(w.p, w.p + 5 - k, k + body);
    w.p[k + body] = '\0';
    *out = (char *)w.p;
    *out_len = k + body;
    return SIGNALR_OK;
}

/* ===== reading ===== */

static int r_need(const sr__mpr *r, size_t k)
{
    return r->n - r->i >= k;
}

static uint64_t r_be(sr__mpr *r, int bytes)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < bytes; i++)
        v = (v << 8) | r->p[r->i++];
    return v;
}

/* The length of a str/bin/array/map header at r (consumed): kind is
 * 's' string, 'b' bin, 'a' array, 'm' map, 'n' nil; -1 when r holds
 * something else or too few bytes. */
int sr__mpr_len(sr__mpr *r, char kind, size_t *len)
{
    unsigned char c;
    int bytes = 0;

    if (!r_need(r, 1))
        return -1;
    c = r->p[r->i];
    if (kind == 's' && c >= 0xa0 && c <= 0xbf) {
        r->i++;
        *len = c & 0x1f;
        return 0;
    }
    if (kind == 'a' && c >= 0x90 && c <= 0x9f) {
        r->i++;
        *len = c & 0x0f;
        return 0;
    }
    if (kind == 'm' && c >= 0x80 && c <= 0x8f) {
        r->i++;
        *len = c & 0x0f;
        return 0;
    }
    switch (kind) {
    case 's': bytes = c == 0xd9 ? 1 : c == 0xda ? 2 : c == 0xdb ? 4 : 0; break;
    case 'b': bytes = c == 0xc4 ? 1 : c == 0xc5 ? 2 : c == 0xc6 ? 4 : 0; break;
    case 'a': bytes = c == 0xdc ? 2 : c == 0xdd ? 4 : 0; break;
    case 'm': bytes = c == 0xde ? 2 : c == 0xdf ? 4 : 0; break;
    default: break;
    }
    if (!bytes || !r_need(r, 1 + (size_t)bytes))
        return -1;
    r->i++;
    *len = (size_t)r_be(r, bytes);
    return 0;
}

/* An integer of any width into *v. */
int sr__mpr_int(sr__mpr *r, int64_t *v)
{
    unsigned char c;

    if (!r_need(r, 1))
        return -1;
    c = r->p[r->i];
    if (c <= 0x7f || c >= 0xe0) {
        r->i++;
        *v = c <= 0x7f ? c : (int64_t)(int8_t)c;
        return 0;
    }
    {
        static const int widths[] = { 1, 2, 4, 8 };
        int w, is_signed;
        uint64_t u;

        if (c >= 0xcc && c <= 0xcf) {
            w = widths[c - 0xcc];
            is_signed = 0;
        } else if (c >= 0xd0 && c <= 0xd3) {
            w = widths[c - 0xd0];
            is_signed = 1;
        } else {
            return -1;
        }
        if (!r_need(r, 1 + (size_t)w))
            return -1;
        r->i++;
        u = r_be(r, w);
        if (!is_signed) {
            if (u > INT64_MAX)
                return -1;
            *v = (int64_t)u;
        } else {
            switch (w) {
            case 1: *v = (int8_t)u; break;
            case 2: *v = (int16_t)u; break;
            case 4: *v = (int32_t)u; break;
            default: *v = (int64_t)u; break;
            }
        }
        return 0;
    }
}

/* A string, bin or nil: *s borrowed (NULL for nil). */
int sr__mpr_str(sr__mpr *r, const char **s, size_t *len)
{
    size_t n;

    if (r_need(r, 1) && r->p[r->i] == 0xc0) {
        r->i++;
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (sr__mpr_len(r, 's', &n) && sr__mpr_len(r, 'b', &n))
        return -1;
    if (!r_need(r, n))
        return -1;
    *s = (const char *)r->p + r->i;
    *len = n;
    r->i += n;
    return 0;
}

int sr__mpr_uint(sr__mpr *r, uint64_t *v)
{
    int64_t s;

    if (r_need(r, 9) && r->p[r->i] == 0xcf) {
        r->i++;
        *v = r_be(r, 8);
        return 0;
    }
    if (sr__mpr_int(r, &s) || s < 0)
        return -1;
    *v = (uint64_t)s;
    return 0;
}

int sr__mpr_double(sr__mpr *r, double *d)
{
    unsigned char c;

    if (!r_need(r, 1))
        return -1;
    c = r->p[r->i];
    if (c == 0xca && r_need(r, 5)) {
        uint32_t bits;
        float f;
        r->i++;
        bits = (uint32_t)r_be(r, 4);
        memcpy(&f, &bits, sizeof f);
        *d = f;
        return 0;
    }
    if (c == 0xcb && r_need(r, 9)) {
        uint64_t bits;
        r->i++;
        bits = r_be(r, 8);
        memcpy(d, &bits, sizeof *d);
        return 0;
    }
    return -1;
}

int sr__mpr_bool(sr__mpr *r, int *v)
{
    if (!r_need(r, 1) || (r->p[r->i] != 0xc2 && r->p[r->i] != 0xc3))
        return -1;
    *v = r->p[r->i++] == 0xc3;
    return 0;
}

int sr__mpr_pass(sr__mpr *r, int depth)
{
    unsigned char c;
    size_t n, i, fixed = 0;
    const char *s;

    if (depth > 64 || !r_need(r, 1))
        return -1;
    c = r->p[r->i];
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        r->i++;
        return 0;
    }
    if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb) ||
        (c >= 0xc4 && c <= 0xc6))
        return sr__mpr_str(r, &s, &n);
    if (c >= 0xcc && c <= 0xd3) { /* any integer, uint64 included */
        static const size_t w[] = { 1, 2, 4, 8 };
        fixed = 1 + w[(c - 0xcc) % 4];
    } else if (c == 0xca || c == 0xcb) {
        fixed = c == 0xca ? 5 : 9;
    } else if (c >= 0xd4 && c <= 0xd8) { /* fixext 1..16 */
        static const size_t sz[] = { 1, 2, 4, 8, 16 };
        fixed = 2 + sz[c - 0xd4];
    } else if (c >= 0xc7 && c <= 0xc9) { /* ext 8/16/32 */
        int w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
        if (!r_need(r, 1 + (size_t)w))
            return -1;
        r->i++;
        n = (size_t)r_be(r, w);
        if (!r_need(r, 1) || r->n - r->i - 1 < n)
            return -1;
        r->i += 1 + n;
        return 0;
    }
    if (fixed) {
        if (!r_need(r, fixed))
            return -1;
        r->i += fixed;
        return 0;
    }
    if (!sr__mpr_len(r, 'a', &n)) {
        for (i = 0; i < n; i++)
            if (sr__mpr_pass(r, depth + 1))
                return -1;
        return 0;
    }
    if (!sr__mpr_len(r, 'm', &n)) {
        for (i = 0; i < n; i++)
            if (sr__mpr_pass(r, depth + 1) || sr__mpr_pass(r, depth + 1))
                return -1;
        return 0;
    }
    return -1; /* 0xc1, never used */
}
