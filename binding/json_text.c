/* json_text.c - JSON text without Lua: the buffer, the writers of
 * strings and numbers, the parser and its fuzzing entry point (see
 * json_text.h).
 *
 * Numbers are exact: a literal that fits 64 bits stays an integer; other
 * literals become the nearest double (Clinger's fast path when the
 * digits and the power of ten are both exact doubles, strtod otherwise);
 * a double prints in the fewest of 15 to 17 significant digits that read
 * back to it.  The C library's conversions follow LC_NUMERIC, which a
 * host may set: JSON's decimal point is '.', so the locale's point is
 * swapped in before strtod and out after printf. */
#define _POSIX_C_SOURCE 200809L
#include "json_text.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exact double arithmetic (no wider intermediates, as on x87) makes one
 * multiplication or division of exact operands correctly rounded. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define EXACT_DOUBLES 1
#else
#define EXACT_DOUBLES 0
#endif

#define TWO53 9007199254740992.0

/* 10^0 .. 10^22: every one an exact double */
static const double P10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* ===== the buffer ===== */

int sr_json_buf_reserve(sr_json_buf *b, size_t more)
{
    size_t need, cap;
    char *p;

    if (more <= b->cap - b->len)
        return 0;
    if (more > (size_t)-1 - b->len)
        return -1;
    need = b->len + more;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void sr_json_buf_free(sr_json_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int put(sr_json_buf *b, const char *s, size_t n)
{
    if (sr_json_buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* ===== UTF-8 ===== */

/* The length of the valid UTF-8 sequence at s[0..n) (s[0] >= 0x80), 0
 * when there is none (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    size_t k, i;

    if (c >= 0xc2 && c <= 0xdf) {
        k = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < k || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return k;
}

static size_t utf8_put(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ===== writers ===== */

/* The letter of c's short escape, 'u' for \u00XX (RFC 8259 section 7) */
static char escape_of(unsigned char c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '\b': return 'b';
    case '\f': return 'f';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    default: return 'u';
    }
}

/* The bytes a JSON string does not take as they are: controls, '"' and
 * '\\' (escaped), and 0x80 and up (checked as UTF-8). */
static const unsigned char SPECIAL[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

int sr_json_put_string(sr_json_buf *b, const char *str, size_t n,
                       size_t *bad_at)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, start = b->len;

    /* room for the text unescaped and its quotes; each escape asks for
     * what it adds */
    if (n > (size_t)-1 - 2 || sr_json_buf_reserve(b, n + 2))
        return -1;
    b->p[b->len++] = '"';
    while (i < n) {
        size_t from = i;
        char e;

        while (i < n) {
            unsigned char c = s[i];

            if (!SPECIAL[c]) { /* written as it is: the common case */
                i++;
                continue;
            }
            if (c < 0x80)
                break; /* escaped below */
            {
                size_t k = utf8_seq(s + i, n - i);
                if (!k) {
                    b->len = start;
                    if (bad_at)
                        *bad_at = i + 1;
                    return -2;
                }
                i += k;
            }
        }
        if (i > from) {
            memcpy(b->p + b->len, s + from, i - from);
            b->len += i - from;
        }
        if (i == n)
            break;
        if (sr_json_buf_reserve(b, 6 + (n - i) + 1)) {
            b->len = start;
            return -1;
        }
        e = escape_of(s[i]);
        b->p[b->len++] = '\\';
        b->p[b->len++] = e;
        if (e == 'u') {
            b->p[b->len++] = '0';
            b->p[b->len++] = '0';
            b->p[b->len++] = hex[s[i] >> 4];
            b->p[b->len++] = hex[s[i] & 15];
        }
        i++;
    }
    b->p[b->len++] = '"';
    return 0;
}

/* Decimal digits of u into the end of t[0..24); returns where they
 * start. */
static size_t digits(char t[24], unsigned long long u)
{
    size_t k = 24;

    do {
        t[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return k;
}

int sr_json_put_integer(sr_json_buf *b, long long v)
{
    char t[24];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                 : (unsigned long long)v;
    size_t k = digits(t, u);

    if (v < 0)
        t[--k] = '-';
    return put(b, t + k, sizeof t - k);
}

/* "[-]int.frac" for m / 10^k (k >= 1, m not a multiple of 10). */
static size_t write_fixed(int neg, unsigned long long m, int k, char *out)
{
    unsigned long long scale = 1, ip, fp;
    char t[24];
    size_t o = 0, d, j;
    int i;

    for (i = 0; i < k; i++)
        scale *= 10;
    ip = m / scale;
    fp = m % scale;
    if (neg)
        out[o++] = '-';
    d = digits(t, ip);
    memcpy(out + o, t + d, sizeof t - d);
    o += sizeof t - d;
    out[o++] = '.';
    d = digits(t, fp);
    for (j = sizeof t - d; j < (size_t)k; j++)
        out[o++] = '0';
    memcpy(out + o, t + d, sizeof t - d);
    o += sizeof t - d;
    out[o] = '\0';
    return o;
}

/* The fast path of a double that is not integral, 1e-4 <= |d| < 1e15
 * (where "%g" writes no exponent): a decimal m / 10^k of at most 15
 * significant digits that reads back to d is the only one (DBL_DIG is
 * 15), so it is what "%.15g" prints.  If there is one, |d * 10^k - m| < 0.18 (d is
 * within 2^-53 of it, the product rounds by at most 1/16 below 2^50), so
 * m is d * 10^k rounded: the search misses none.  0 when there is none
 * (the caller then starts printf at 16 digits), -1 outside the range or
 * without exact doubles. */
static int fmt_fast(double d, char *out, size_t *len)
{
#if EXACT_DOUBLES
    double a = d < 0 ? -d : d;
    int k;

    if (!(a >= 1e-4 && a < 1e15))
        return -1;
    for (k = 1; k <= 22; k++) {
        double y = a * P10[k];
        unsigned long long m;

        if (y >= 1e15)
            return 0;
        m = (unsigned long long)(y + 0.5); /* exact: y < 2^50 */
        /* m / 10^k is correctly rounded: both are exact doubles */
        if ((double)m / P10[k] != a)
            continue;
        while (k > 1 && m % 10 == 0) {
            m /= 10;
            k--;
        }
        if (m % 10 == 0) /* integral: not for this path */
            return -1;
        *len = write_fixed(d < 0, m, k, out);
        return 1;
    }
    return 0;
#else
    (void)d;
    (void)out;
    (void)len;
    return -1;
#endif
}

/* printf's shortest of from, ..., 17 digits that reads back, with '.'
 * for the locale's decimal point. */
static size_t fmt_slow(double d, char *out, int from)
{
    char t[48];
    size_t i, o = 0;
    int prec, point = 0;

    for (prec = from; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, d);
        if (prec == 17 || strtod(t, NULL) == d) /* same locale both ways */
            break;
    }
    for (i = 0; t[i] && o < 39; i++) {
        char c = t[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            out[o++] = c;
            point = 0;
        } else if (!point) { /* the locale's point, whatever its width */
            out[o++] = '.';
            point = 1;
        }
    }
    out[o] = '\0';
    return o;
}

size_t sr_json_format_double(double d, char out[40])
{
    double a = d < 0 ? -d : d;
    size_t n = 0;
    int fast;

    if (isnan(d) || isinf(d)) {
        out[0] = '\0';
        return 0;
    }
    if (a <= TWO53 && (double)(long long)d == d) {
        char t[24];
        long long v = (long long)d;
        size_t k = digits(t, (unsigned long long)(v < 0 ? -v : v));

        if (v < 0 || signbit(d))
            t[--k] = '-';
        memcpy(out, t + k, sizeof t - k);
        out[sizeof t - k] = '\0';
        return sizeof t - k;
    }
    fast = fmt_fast(d, out, &n);
    if (fast == 1)
        return n;
    return fmt_slow(d, out, fast == 0 ? 16 : 15);
}

int sr_json_put_double(sr_json_buf *b, double d)
{
    char t[40];
    size_t n = sr_json_format_double(d, t);

    if (!n)
        return -2;
    return put(b, t, n);
}

/* ===== the parser ===== */

typedef struct {
    const unsigned char *s;
    size_t n, i;
    int depth, max_depth;
    const sr_json_visitor *v;
    void *ud;
    sr_json_buf *scratch;
    sr_json_error *e;
    char point[8]; /* the locale's decimal point, "" until needed */
} parser;

static int fail(parser *p, int code, size_t at, const char *what)
{
    if (p->e) {
        p->e->code = code;
        p->e->pos = at + 1;
        snprintf(p->e->msg, sizeof p->e->msg, "%s at byte %lu", what,
                 (unsigned long)(at + 1));
    }
    return code;
}

/* "expected <what>, found ..." at the current byte */
static int expected(parser *p, const char *what)
{
    char m[96];

    if (p->i >= p->n) {
        snprintf(m, sizeof m, "expected %s, found the end of the text",
                 what);
    } else {
        unsigned char c = p->s[p->i];
        if (c > 0x20 && c < 0x7f)
            snprintf(m, sizeof m, "expected %s, found '%c'", what, c);
        else
            snprintf(m, sizeof m, "expected %s, found byte 0x%02x", what,
                     c);
    }
    return fail(p, SR_JSON_ESYNTAX, p->i, m);
}

static int called(parser *p, int r)
{
    return r ? fail(p, SR_JSON_ECALLBACK, p->i, "stopped by the caller")
             : SR_JSON_OK;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->i++;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits of a \u escape whose 'u' is at s[i - 1]; -1 when
 * bad. */
static long hex4(const parser *p, size_t i)
{
    long v = 0;
    size_t k;

    if (p->n - i < 4)
        return -1;
    for (k = 0; k < 4; k++) {
        int h = hexval(p->s[i + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static int emit_string(parser *p, int key, const char *s, size_t n)
{
    return called(p, key ? p->v->key(p->ud, s, n)
                         : p->v->string(p->ud, s, n));
}

/* A string at p->i (its opening quote): borrowed from the text when it
 * has no escape, else decoded into the scratch buffer. */
static int parse_string(parser *p, int key)
{
    const unsigned char *s = p->s;
    size_t n = p->n, open = p->i, i = open + 1, from = i, end, o;
    char *out;

    for (;;) {
        unsigned char c;
        size_t k;

        if (i >= n)
            return fail(p, SR_JSON_ESYNTAX, open, "unterminated string");
        c = s[i];
        if (c == '"') {
            p->i = i + 1;
            return emit_string(p, key, (const char *)s + from, i - from);
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            return fail(p, SR_JSON_ESYNTAX, i, "control character in a "
                        "string");
        if (c < 0x80) {
            i++;
            continue;
        }
        k = utf8_seq(s + i, n - i);
        if (!k)
            return fail(p, SR_JSON_ESYNTAX, i, "invalid UTF-8 in a string");
        i += k;
    }
    /* escapes: the decoded text is never longer than the raw one */
    for (end = i; end < n && s[end] != '"'; end++)
        if (s[end] == '\\')
            end++;
    if (end >= n)
        return fail(p, SR_JSON_ESYNTAX, open, "unterminated string");
    p->scratch->len = 0;
    if (sr_json_buf_reserve(p->scratch, end - from + 1))
        return fail(p, SR_JSON_ENOMEM, open, "out of memory");
    out = p->scratch->p;
    memcpy(out, s + from, i - from);
    o = i - from;
    while (i < end) {
        unsigned char c = s[i];
        long cp, lo;
        size_t k;

        if (c != '\\') {
            if (c < 0x20)
                return fail(p, SR_JSON_ESYNTAX, i, "control character in "
                            "a string");
            k = c < 0x80 ? 1 : utf8_seq(s + i, n - i);
            if (!k)
                return fail(p, SR_JSON_ESYNTAX, i, "invalid UTF-8 in a "
                            "string");
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        switch (s[i + 1]) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u':
            cp = hex4(p, i + 2);
            if (cp < 0)
                return fail(p, SR_JSON_ESYNTAX, i, "invalid \\u escape");
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(p, SR_JSON_ESYNTAX, i, "lone surrogate in a "
                            "\\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                lo = i + 11 < end && s[i + 6] == '\\' && s[i + 7] == 'u'
                         ? hex4(p, i + 8) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fail(p, SR_JSON_ESYNTAX, i, "lone surrogate in "
                                "a \\u escape");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            o += utf8_put(out + o, (unsigned long)cp);
            i += 4;
            break;
        default:
            return fail(p, SR_JSON_ESYNTAX, i, "invalid escape");
        }
        i += 2;
    }
    p->i = end + 1;
    return emit_string(p, key, out, o);
}

/* The locale's decimal point as printf writes it (re-entrant, unlike
 * localeconv()). */
static void locale_point(char point[8])
{
    char t[16];
    size_t k = 0;
    const char *q;

    snprintf(t, sizeof t, "%.1f", 0.5);
    for (q = t + 1; *q && *q != '5' && k < 7; q++)
        point[k++] = *q;
    if (!k)
        point[k++] = '.';
    point[k] = '\0';
}

/* strtod of the literal s[a..b) in any locale, its sign left out. */
static int slow_number(parser *p, size_t a, size_t b, double *d)
{
    char small[80], *t = small;
    size_t pl, o = 0, j, from = p->s[a] == '-' ? a + 1 : a;

    if (!p->point[0])
        locale_point(p->point);
    pl = strlen(p->point);
    if (b - a + pl + 1 > sizeof small) {
        p->scratch->len = 0;
        if (sr_json_buf_reserve(p->scratch, b - a + pl + 1))
            return fail(p, SR_JSON_ENOMEM, a, "out of memory");
        t = p->scratch->p;
    }
    for (j = from; j < b; j++) {
        if (p->s[j] == '.') {
            memcpy(t + o, p->point, pl);
            o += pl;
        } else {
            t[o++] = (char)p->s[j];
        }
    }
    t[o] = '\0';
    *d = strtod(t, NULL);
    if (isinf(*d))
        return fail(p, SR_JSON_ERANGE, a, "number out of range");
    return SR_JSON_OK;
}

static int is_digit(const parser *p, size_t i)
{
    return i < p->n && p->s[i] >= '0' && p->s[i] <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? (RFC 8259 section 6) */
static int parse_number(parser *p)
{
    const unsigned char *s = p->s;
    size_t a = p->i, i = a;
    unsigned long long m = 0;
    long exp10 = 0, ex = 0;
    int neg = 0, sig = 0, big = 0, frac = 0, r;
    double d;

    if (s[i] == '-') {
        neg = 1;
        i++;
    }
    if (!is_digit(p, i))
        return fail(p, SR_JSON_ESYNTAX, a, "invalid number");
    /* up to 19 significant digits in m; more: strtod decides */
    if (s[i] == '0') {
        i++;
    } else {
        for (; is_digit(p, i); i++) {
            if (sig < 19) {
                m = m * 10 + (unsigned)(s[i] - '0');
                sig++;
            } else {
                big = 1;
            }
        }
    }
    if (i < p->n && s[i] == '.') {
        frac = 1;
        if (!is_digit(p, ++i))
            return fail(p, SR_JSON_ESYNTAX, a, "invalid number");
        for (; is_digit(p, i); i++) {
            if (!sig && s[i] == '0') { /* leading zeros only scale */
                exp10--;
            } else if (sig < 19) {
                m = m * 10 + (unsigned)(s[i] - '0');
                sig++;
                exp10--;
            } else {
                big = 1;
            }
        }
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        frac = 1;
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (!is_digit(p, i))
            return fail(p, SR_JSON_ESYNTAX, a, "invalid number");
        for (; is_digit(p, i); i++)
            if (ex < 100000)
                ex = ex * 10 + (s[i] - '0');
        exp10 += eneg ? -ex : ex;
    }
    p->i = i;
    if (!frac && !big) {
        if (!neg && m <= 9223372036854775807ULL)
            return called(p, p->v->integer(p->ud, (long long)m));
        if (neg && m && m <= 9223372036854775808ULL)
            return called(p, p->v->integer(p->ud,
                                           -(long long)(m - 1) - 1));
    }
    if (!big && m == 0) {
        d = 0.0; /* "-0", "0.0", "0e5" */
    } else if (EXACT_DOUBLES && !big && m <= (unsigned long long)TWO53 &&
               exp10 >= -22 && exp10 <= 22) {
        d = (double)m;
        d = exp10 < 0 ? d / P10[-exp10] : d * P10[exp10];
    } else {
        r = slow_number(p, a, i, &d);
        if (r)
            return r;
    }
    return called(p, p->v->number(p->ud, neg ? -d : d));
}

static int parse_value(parser *p);

static int enter(parser *p)
{
    char m[64];

    if (++p->depth <= p->max_depth)
        return SR_JSON_OK;
    snprintf(m, sizeof m, "nested deeper than %d", p->max_depth);
    return fail(p, SR_JSON_EDEPTH, p->i, m);
}

static int parse_array(parser *p)
{
    size_t count = 0;
    int r = enter(p);

    if (!r)
        r = called(p, p->v->begin(p->ud, 1));
    if (r)
        return r;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
    } else {
        for (;;) {
            r = parse_value(p);
            if (!r)
                r = called(p, p->v->item(p->ud, ++count));
            if (r)
                return r;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == ']') {
                p->i++;
                break;
            }
            return expected(p, "',' or ']'");
        }
    }
    p->depth--;
    return called(p, p->v->end(p->ud, 1, count));
}

static int parse_object(parser *p)
{
    size_t count = 0;
    int r = enter(p);

    if (!r)
        r = called(p, p->v->begin(p->ud, 0));
    if (r)
        return r;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
    } else {
        for (;;) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"')
                return expected(p, "a string key");
            r = parse_string(p, 1);
            if (r)
                return r;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return expected(p, "':'");
            p->i++;
            r = parse_value(p);
            if (!r)
                r = called(p, p->v->member(p->ud));
            if (r)
                return r;
            count++;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == '}') {
                p->i++;
                break;
            }
            return expected(p, "',' or '}'");
        }
    }
    p->depth--;
    return called(p, p->v->end(p->ud, 0, count));
}

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);

    if (p->n - p->i < n || memcmp(p->s + p->i, word, n))
        return fail(p, SR_JSON_ESYNTAX, p->i, "invalid literal");
    p->i += n;
    return SR_JSON_OK;
}

static int parse_value(parser *p)
{
    int r;

    skip_ws(p);
    if (p->i >= p->n)
        return expected(p, "a value");
    switch (p->s[p->i]) {
    case '{':
        return parse_object(p);
    case '[':
        return parse_array(p);
    case '"':
        return parse_string(p, 0);
    case 't':
        r = literal(p, "true");
        return r ? r : called(p, p->v->boolean(p->ud, 1));
    case 'f':
        r = literal(p, "false");
        return r ? r : called(p, p->v->boolean(p->ud, 0));
    case 'n':
        r = literal(p, "null");
        return r ? r : called(p, p->v->null(p->ud));
    default:
        if (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9'))
            return parse_number(p);
        return expected(p, "a value");
    }
}

int sr_json_parse(const char *s, size_t n, int max_depth,
                  const sr_json_visitor *v, void *ud, sr_json_buf *scratch,
                  sr_json_error *e)
{
    parser p;
    int r;

    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)s;
    p.n = s ? n : 0;
    p.max_depth = max_depth > 0 ? max_depth : 1;
    p.v = v;
    p.ud = ud;
    p.scratch = scratch;
    p.e = e;
    if (e) {
        e->code = SR_JSON_OK;
        e->pos = 0;
        e->msg[0] = '\0';
    }
    r = parse_value(&p);
    if (r)
        return r;
    skip_ws(&p);
    if (p.i < p.n)
        return expected(&p, "the end of the text");
    return SR_JSON_OK;
}

/* ===== the fuzzing entry point ===== */

/* A visitor writing what it is shown back as canonical JSON. */
static int c_null(void *ud)
{
    return put(ud, "null", 4);
}

static int c_boolean(void *ud, int b)
{
    return b ? put(ud, "true", 4) : put(ud, "false", 5);
}

static int c_integer(void *ud, long long v)
{
    return sr_json_put_integer(ud, v);
}

static int c_number(void *ud, double d)
{
    char fast[40], slow[48];
    size_t n;
    int r = sr_json_put_double(ud, d), got = fmt_fast(d, fast, &n);

    if (r == -2) /* the parser never gives NaN or infinity */
        abort();
    /* the fast path gives printf's digits, and misses no 15-digit form */
    if (got == 1) {
        fmt_slow(d, slow, 15);
        if (strcmp(fast, slow))
            abort();
    } else if (got == 0 && (double)(long long)d != d) {
        snprintf(slow, sizeof slow, "%.15g", d);
        if (strtod(slow, NULL) == d)
            abort();
    }
    return r;
}

static int c_string(void *ud, const char *s, size_t n)
{
    int r = sr_json_put_string(ud, s, n, NULL);

    if (r == -2) /* the parser gives valid UTF-8 only */
        abort();
    return r;
}

static int c_begin(void *ud, int array)
{
    return put(ud, array ? "[" : "{", 1);
}

static int c_key(void *ud, const char *s, size_t n)
{
    return c_string(ud, s, n) || put(ud, ":", 1) ? -1 : 0;
}

static int c_item(void *ud, size_t index)
{
    (void)index;
    return put(ud, ",", 1);
}

static int c_member(void *ud)
{
    return put(ud, ",", 1);
}

static int c_end(void *ud, int array, size_t count)
{
    sr_json_buf *b = ud;

    if (count)
        b->len--; /* the last ',' */
    return put(b, array ? "]" : "}", 1);
}

static const sr_json_visitor CANON = {
    c_null, c_boolean, c_integer, c_number, c_string,
    c_begin, c_key, c_item, c_member, c_end
};

int sr_json_fuzz_one(const unsigned char *data, size_t size)
{
    sr_json_buf scratch = {NULL, 0, 0}, one = {NULL, 0, 0},
                two = {NULL, 0, 0};
    int r = sr_json_parse((const char *)data, size, 1000, &CANON, &one,
                          &scratch, NULL);

    if (r == SR_JSON_OK) {
        int r2 = sr_json_parse(one.p, one.len, 1000, &CANON, &two, &scratch,
                               NULL);
        if (r2 != SR_JSON_OK && r2 != SR_JSON_ENOMEM &&
            r2 != SR_JSON_ECALLBACK)
            abort();
        if (r2 == SR_JSON_OK &&
            (one.len != two.len || memcmp(one.p, two.p, one.len)))
            abort();
    }
    sr_json_buf_free(&scratch);
    sr_json_buf_free(&one);
    sr_json_buf_free(&two);
    return r == SR_JSON_OK ? 0 : 1;
}
