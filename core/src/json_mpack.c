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

static int json_container(sr__mpw *w, const char *s, size_t n, int depth)
{
    size_t pos = 0, count = 0, kl, vl;
    const char *k, *v;
    int obj = s[0] == '{';

    while (sr__json_next(s, n, &pos, &k, &kl, &v, &vl))
        count++;
    if (obj)
        sr__mpw_map(w, count);
    else
        sr__mpw_array(w, count);
    pos = 0;
    while (sr__json_next(s, n, &pos, &k, &kl, &v, &vl)) {
        if (obj && sr__json_to_mp(w, k - 1, kl + 2, depth + 1))
            return -1;
        if (sr__json_to_mp(w, v, vl, depth + 1))
            return -1;
    }
    return 0;
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

static int json_number(sr__mpw *w, const char *s, size_t n)
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

int sr__json_to_mp(sr__mpw *w, const char *s, size_t n, int depth)
{
    size_t len;

    if (depth > SR__MP_MAX_DEPTH)
        return -1;
    switch (s[0]) {
    case '{':
    case '[':
        return json_container(w, s, n, depth);
    case '"':
        len = sr__json_unescape(s, n, NULL);
        if (len == (size_t)-1)
            return -1;
        sr__mpw_head(w, len, 0xa0, 31, 0xd9, 0xda, 0xdb);
        if (w->p || w->grow) {
            if (!sr__mpw_room(w, len))
                return -1;
            sr__json_unescape(s, n, w->p + w->len);
        }
        w->len += len;
        return 0;
    case 't':
    case 'f':
        sr__mpw_bool(w, s[0] == 't');
        return 0;
    case 'n':
        sr__mpw_nil(w);
        return 0;
    default:
        return json_number(w, s, n);
    }
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
            return mp_fail(err, at, "values nested too deep");
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
            return mp_fail(err, at, "values nested too deep");
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
