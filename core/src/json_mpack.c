/* json_mpack.c - JSON text to MessagePack and back: the values a hub
 * message carries are JSON for the Lua layer (it decodes them with cjson)
 * and MessagePack for the clients that chose that protocol.
 *
 * Caveats: numbers keep their value both ways (integers that fit 64 bits
 * stay integers, doubles print in the fewest digits, at most 17, that read
 * back to the same double, whatever the C locale's decimal point); a
 * double that is integral prints with ".0" so that it comes back a
 * double.  JSON has no NaN, infinity, binary or non-string map key:
 * binary becomes a base64 string (RFC 4648 section 4, padded, as .NET
 * writes a byte[] in JSON), the others are errors. */
#include "mpack.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        int d = sr__hexval(s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t sr__json_unescape(const char *s, size_t n, unsigned char *out)
{
    size_t i, len = 0;
    unsigned char tmp[4];

    for (i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t k;

        if (c != '\\') {
            if (out)
                out[len] = c;
            len++;
            continue;
        }
        if (++i + 1 >= n)
            return (size_t)-1;
        switch (s[i]) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (i + 5 > n - 1 || hex4(s + i + 1, &cp))
                return (size_t)-1;
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 7 <= n - 1 &&
                s[i + 1] == '\\' && s[i + 2] == 'u') {
                unsigned lo;
                if (!hex4(s + i + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            /* a lone surrogate has no UTF-8 form */
            if (cp >= 0xd800 && cp < 0xe000)
                return (size_t)-1;
            break;
        default:
            return (size_t)-1;
        }
        k = utf8_put(tmp, cp);
        if (out)
            memcpy(out + len, tmp, k);
        len += k;
    }
    return len;
}

/* The C library's number conversions follow LC_NUMERIC, which a host
 * may set; JSON's decimal point is always '.'.  The locale's point, as
 * printf writes it (re-entrant, unlike localeconv()). */
static void locale_point(char point[8])
{
    char t[16];
    size_t k = 0;
    const char *p;

    snprintf(t, sizeof t, "%.1f", 0.5);
    for (p = t + 1; *p && *p != '5' && k < 7; p++)
        point[k++] = *p;
    point[k] = '\0';
}

/* strtod of the JSON number s[0..n) in any locale; -1 when out of
 * memory. */
static int json_strtod(const char *s, size_t n, double *d)
{
    char point[8], small[80], *t = small;
    size_t i, o = 0, pl;

    locale_point(point);
    pl = strlen(point);
    if (n + pl >= sizeof small) {
        t = malloc(n + pl + 1);
        if (!t)
            return -1;
    }
    for (i = 0; i < n; i++) {
        if (s[i] == '.') {
            memcpy(t + o, point, pl);
            o += pl;
        } else {
            t[o++] = s[i];
        }
    }
    t[o] = '\0';
    *d = strtod(t, NULL);
    if (t != small)
        free(t);
    return 0;
}

int sr__json_number_to_mp(sr__mpw *w, const char *s, size_t n)
{
    char tmp[32];
    size_t i;
    int integral = n < sizeof tmp; /* more digits than 64 bits hold */

    for (i = 0; i < n && integral; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
            integral = 0;
    if (integral) {
        char *end;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        errno = 0;
        if (tmp[0] == '-') {
            long long v = strtoll(tmp, &end, 10);
            if (!errno && *end == '\0') {
                sr__mpw_int(w, v);
                return 0;
            }
        } else {
            unsigned long long v = strtoull(tmp, &end, 10);
            if (!errno && *end == '\0') {
                sr__mpw_uint(w, v);
                return 0;
            }
        }
    }
    {
        double d;
        if (json_strtod(s, n, &d))
            return -1;
        sr__mpw_double(w, d);
    }
    return 0;
}

/* The transcoder: one pass over the (validated) text, writing as it
 * reads.  A container's count is known at its end: its header is written
 * as one byte (the fix form) and, for more than 15 members, widened in
 * place (what follows moves up 2 or 4 bytes). */
typedef struct {
    const char *s;
    size_t n, i;
} jcur;

static void j_ws(jcur *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' ||
                           c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static int j_value(sr__mpw *w, jcur *c, int depth);

/* The header of a container of count members whose first byte was
 * written at w->p[at] (a counting writer only counts). */
static int j_head(sr__mpw *w, size_t at, size_t count, int obj)
{
    unsigned char h[5];
    size_t hl;

    if (count <= 15) {
        h[0] = (unsigned char)((obj ? 0x80 : 0x90) | count);
        hl = 1;
    } else if (count <= 0xffff) {
        h[0] = obj ? 0xde : 0xdc;
        h[1] = (unsigned char)(count >> 8);
        h[2] = (unsigned char)count;
        hl = 3;
    } else {
        h[0] = obj ? 0xdf : 0xdd;
        h[1] = (unsigned char)(count >> 24);
        h[2] = (unsigned char)(count >> 16);
        h[3] = (unsigned char)(count >> 8);
        h[4] = (unsigned char)count;
        hl = 5;
    }
    if (w->p || w->grow) {
        if (w->oom || !sr__mpw_room(w, hl - 1))
            return -1;
        if (hl > 1)
            memmove(w->p + at + hl, w->p + at + 1, w->len - at - 1);
        memcpy(w->p + at, h, hl);
    }
    w->len += hl - 1;
    return 0;
}

static int j_container(sr__mpw *w, jcur *c, int depth)
{
    int obj = c->s[c->i] == '{';
    char close = obj ? '}' : ']';
    size_t at = w->len, count = 0;

    c->i++;
    sr__mpw_byte(w, 0); /* the header, set at the end */
    j_ws(c);
    if (c->i < c->n && c->s[c->i] == close) {
        c->i++;
        return j_head(w, at, 0, obj);
    }
    for (;;) {
        if (obj) {
            /* a key: a string, one level down as a value would be */
            if (c->i >= c->n || c->s[c->i] != '"' ||
                j_value(w, c, depth + 1))
                return -1;
            j_ws(c);
            if (c->i >= c->n || c->s[c->i] != ':')
                return -1;
            c->i++;
            j_ws(c);
        }
        if (j_value(w, c, depth + 1))
            return -1;
        count++;
        j_ws(c);
        if (c->i >= c->n)
            return -1;
        if (c->s[c->i] == ',') {
            c->i++;
            j_ws(c);
            continue;
        }
        if (c->s[c->i] != close)
            return -1;
        c->i++;
        return j_head(w, at, count, obj);
    }
}

static int j_string(sr__mpw *w, jcur *c)
{
    const char *s = c->s + c->i, *q;
    size_t rest = c->n - c->i, len;

    q = memchr(s + 1, '"', rest - 1);
    if (q && !memchr(s + 1, '\\', (size_t)(q - s - 1))) {
        /* no escape: the bytes as they are */
        len = (size_t)(q - s - 1);
        c->i += len + 2;
        sr__mpw_str(w, s + 1, len);
        return 0;
    }
    {
        size_t j = 1;

        while (j < rest && s[j] != '"')
            j += s[j] == '\\' ? 2 : 1;
        if (j >= rest)
            return -1;
        c->i += j + 1;
        len = sr__json_unescape(s, j + 1, NULL);
        if (len == (size_t)-1)
            return -1;
        sr__mpw_head(w, len, 0xa0, 31, 0xd9, 0xda, 0xdb);
        if (w->p || w->grow) {
            if (w->oom || !sr__mpw_room(w, len))
                return -1;
            sr__json_unescape(s, j + 1, w->p + w->len);
        }
        w->len += len;
    }
    return 0;
}

static int j_number(sr__mpw *w, jcur *c)
{
    const char *s = c->s + c->i;
    size_t k = 0, rest = c->n - c->i, digits;
    int neg = s[0] == '-', integral = 1;
    uint64_t v = 0;

    while (k < rest) {
        char ch = s[k];

        if (ch >= '0' && ch <= '9') {
            v = v * 10 + (uint64_t)(ch - '0');
        } else if (ch == '.' || ch == 'e' || ch == 'E' || ch == '+') {
            integral = 0;
        } else if (ch != '-') {
            break;
        }
        k++;
    }
    c->i += k;
    digits = k - (size_t)neg;
    if (!integral || digits == 0 || digits > 18)
        return sr__json_number_to_mp(w, s, k); /* doubles; near 2^64 */
    if (neg)
        sr__mpw_int(w, -(int64_t)v);
    else
        sr__mpw_uint(w, v);
    return 0;
}

static int j_value(sr__mpw *w, jcur *c, int depth)
{
    size_t k;

    if (depth > SR__MP_MAX_DEPTH || c->i >= c->n)
        return -1;
    switch (c->s[c->i]) {
    case '{':
    case '[':
        return j_container(w, c, depth);
    case '"':
        return j_string(w, c);
    case 't':
        k = 4;
        sr__mpw_bool(w, 1);
        break;
    case 'f':
        k = 5;
        sr__mpw_bool(w, 0);
        break;
    case 'n':
        k = 4;
        sr__mpw_nil(w);
        break;
    default:
        return j_number(w, c);
    }
    if (c->n - c->i < k)
        return -1;
    c->i += k;
    return 0;
}

int sr__json_to_mp(sr__mpw *w, const char *s, size_t n, int depth)
{
    jcur c;

    c.s = s;
    c.n = n;
    c.i = 0;
    j_ws(&c);
    if (j_value(w, &c, depth))
        return -1;
    return w->oom ? -1 : 0;
}

/* ===== MessagePack to JSON ===== */

/* A double as JSON: the fewest significant digits (15 to 17) that read
 * back to d, '.' as the decimal point, ".0" after an integral value.
 * Writes at most 32 bytes; 0 for NaN and infinities. */
static size_t fmt_double(double d, char out[32])
{
    char t[40];
    size_t i, o = 0;
    int prec, point = 0, dot = 0;

    if (isnan(d) || isinf(d))
        return 0;
    for (prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, d);
        if (prec == 17 || strtod(t, NULL) == d)
            break;
    }
    for (i = 0; t[i] && o < 29; i++) {
        char c = t[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            out[o++] = c;
            point = 0;
            dot |= c == 'e';
        } else if (!point) { /* the locale's decimal point, any width */
            out[o++] = '.';
            point = dot = 1;
        }
    }
    if (!dot) {
        out[o++] = '.';
        out[o++] = '0';
    }
    out[o] = '\0';
    return o;
}

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* bytes as a JSON string of their base64 (RFC 4648 section 4, padded) */
static void add_base64(sr__buf *out, const unsigned char *p, size_t n)
{
    size_t i;
    char q[4];

    sr__buf_add(out, "\"", 1);
    for (i = 0; i + 2 < n; i += 3) {
        unsigned long v = ((unsigned long)p[i] << 16) |
                          ((unsigned long)p[i + 1] << 8) | p[i + 2];
        q[0] = B64[(v >> 18) & 63];
        q[1] = B64[(v >> 12) & 63];
        q[2] = B64[(v >> 6) & 63];
        q[3] = B64[v & 63];
        sr__buf_add(out, q, 4);
    }
    if (n - i == 1) {
        q[0] = B64[p[i] >> 2];
        q[1] = B64[(p[i] & 3) << 4];
        q[2] = q[3] = '=';
        sr__buf_add(out, q, 4);
    } else if (n - i == 2) {
        q[0] = B64[p[i] >> 2];
        q[1] = B64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        q[2] = B64[(p[i + 1] & 15) << 2];
        q[3] = '=';
        sr__buf_add(out, q, 4);
    }
    sr__buf_add(out, "\"", 1);
}

static int mp_fail(signalr_error *err, size_t at, const char *what)
{
    sr__fail(err, SIGNALR_EPROTOCOL, "%s (at byte %zu of the message)", what,
             at + 1);
    return -1;
}

/* A string value: UTF-8 checked, escaped. */
static int mp_string(sr__mpr *r, sr__buf *out, size_t at, size_t n,
                     signalr_error *err)
{
    const char *s = (const char *)r->p + r->i;

    if (r->n - r->i < n)
        return mp_fail(err, at, "a string runs past the message");
    if (sr__utf8_bad(s, n))
        return mp_fail(err, at, "a string is not valid UTF-8");
    sr__buf_add_json_string(out, s, n);
    r->i += n;
    return 0;
}

int sr__mp_to_json(sr__mpr *r, sr__buf *out, int depth_left,
                   signalr_error *err)
{
    size_t at = r->i, n, i;
    unsigned char c;
    char num[32];

    if (r->i >= r->n)
        return mp_fail(err, at, "a value is missing");
    c = r->p[r->i];
    if (c == 0xc0 || c == 0xc2 || c == 0xc3) {
        r->i++;
        sr__buf_adds(out, c == 0xc0 ? "null" : c == 0xc3 ? "true" : "false");
        return 0;
    }
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3)) {
        int64_t v;
        uint64_t u;
        if (c == 0xcf) {
            if (sr__mpr_uint(r, &u))
                return mp_fail(err, at, "an integer runs past the "
                               "message");
            snprintf(num, sizeof num, "%llu", (unsigned long long)u);
        } else {
            if (sr__mpr_int(r, &v))
                return mp_fail(err, at, "an integer runs past the "
                               "message");
            snprintf(num, sizeof num, "%lld", (long long)v);
        }
        sr__buf_adds(out, num);
        return 0;
    }
    if (c == 0xca || c == 0xcb) {
        double d;
        if (sr__mpr_double(r, &d))
            return mp_fail(err, at, "a float runs past the message");
        if (!fmt_double(d, num))
            return mp_fail(err, at, "NaN and infinities have no JSON "
                           "form");
        sr__buf_adds(out, num);
        return 0;
    }
    if (!sr__mpr_len(r, 's', &n))
        return mp_string(r, out, at, n, err);
    if (!sr__mpr_len(r, 'b', &n)) {
        if (r->n - r->i < n)
            return mp_fail(err, at, "binary runs past the message");
        add_base64(out, r->p + r->i, n);
        r->i += n;
        return 0;
    }
    if (!sr__mpr_len(r, 'a', &n)) {
        if (depth_left <= 0)
            return mp_fail(err, at, SR__MP_TOO_DEEP);
        sr__buf_add(out, "[", 1);
        for (i = 0; i < n; i++) {
            if (i)
                sr__buf_add(out, ",", 1);
            if (sr__mp_to_json(r, out, depth_left - 1, err))
                return -1;
        }
        sr__buf_add(out, "]", 1);
        return 0;
    }
    if (!sr__mpr_len(r, 'm', &n)) {
        if (depth_left <= 0)
            return mp_fail(err, at, SR__MP_TOO_DEEP);
        sr__buf_add(out, "{", 1);
        for (i = 0; i < n; i++) {
            size_t kat = r->i, kl;
            if (i)
                sr__buf_add(out, ",", 1);
            if (sr__mpr_len(r, 's', &kl))
                return mp_fail(err, kat, "a map key is not a string: "
                               "JSON has no other");
            if (mp_string(r, out, kat, kl, err))
                return -1;
            sr__buf_add(out, ":", 1);
            if (sr__mp_to_json(r, out, depth_left - 1, err))
                return -1;
        }
        sr__buf_add(out, "}", 1);
        return 0;
    }
    if ((c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8))
        return mp_fail(err, at, "a MessagePack extension type has no "
                       "JSON form");
    return mp_fail(err, at, "a byte that starts no MessagePack value");
}
