/* buf.c - growable buffers, base64url and a minimal JSON scanner. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_reserve(sr__buf *b, size_t extra)
{
    size_t cap;
    char *p;

    if (b->oom)
        return 0;
    if (b->len + extra + 1 <= b->cap)
        return 1;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void sr__buf_add(sr__buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sr__buf_adds(sr__buf *b, const char *s)
{
    sr__buf_add(b, s, strlen(s));
}

void sr__buf_addf(sr__buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    /* Only used for numbers and short literals; longer output is a bug. */
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->oom = 1;
        return;
    }
    sr__buf_add(b, tmp, (size_t)n);
}

void sr__buf_add_escaped(sr__buf *b, const char *s, size_t n)
{
    size_t need = signalr_url_encode(NULL, 0, s, n);

    if (!buf_reserve(b, need))
        return;
    signalr_url_encode(b->p + b->len, need + 1, s, n);
    b->len += need;
}

void sr__buf_add_json_string(sr__buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    sr__buf_add(b, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[7];

        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        sr__buf_add(b, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (ch) {
        case '"': sr__buf_add(b, "\\\"", 2); break;
        case '\\': sr__buf_add(b, "\\\\", 2); break;
        case '\n': sr__buf_add(b, "\\n", 2); break;
        case '\r': sr__buf_add(b, "\\r", 2); break;
        case '\t': sr__buf_add(b, "\\t", 2); break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            sr__buf_add(b, esc, 6);
        }
    }
    sr__buf_add(b, s + run, n - run);
    sr__buf_add(b, "\"", 1);
}

char *sr__buf_take(sr__buf *b, size_t *len)
{
    char *p;

    if (!b->oom && !b->p)
        sr__buf_add(b, "", 0);
    if (b->oom) {
        sr__buf_free(b);
        return NULL;
    }
    p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void sr__buf_free(sr__buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

/* ===== base64url (RFC 4648 section 5, no padding) ===== */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sr__b64url_encode(char *dst, const unsigned char *src, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned long v = ((unsigned long)src[i] << 16) |
                          ((unsigned long)src[i + 1] << 8) | src[i + 2];
        dst[o++] = B64[(v >> 18) & 63];
        dst[o++] = B64[(v >> 12) & 63];
        dst[o++] = B64[(v >> 6) & 63];
        dst[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        unsigned long v = (unsigned long)src[i] << 16;
        dst[o++] = B64[(v >> 18) & 63];
        dst[o++] = B64[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned long v = ((unsigned long)src[i] << 16) |
                          ((unsigned long)src[i + 1] << 8);
        dst[o++] = B64[(v >> 18) & 63];
        dst[o++] = B64[(v >> 12) & 63];
        dst[o++] = B64[(v >> 6) & 63];
    }
    dst[o] = '\0';
    return o;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

size_t sr__b64url_decode(unsigned char *dst, const char *src, size_t n)
{
    size_t i, o = 0;
    unsigned long acc = 0;
    int bits = 0;

    if (n % 4 == 1)
        return (size_t)-1;
    for (i = 0; i < n; i++) {
        int v = b64val(src[i]);

        if (v < 0)
            return (size_t)-1;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits must be zero for a canonical encoding. */
    if (bits && (acc & ((1UL << bits) - 1)))
        return (size_t)-1;
    return o;
}

char *sr__b64url_decode_dup(const char *s, size_t n, size_t *outlen)
{
    unsigned char *p = malloc(n * 3 / 4 + 3);
    size_t len;

    if (!p)
        return NULL;
    len = sr__b64url_decode(p, s, n);
    if (len == (size_t)-1) {
        free(p);
        return NULL;
    }
    p[len] = '\0';
    *outlen = len;
    return (char *)p;
}

/* ===== JSON scanning (enough to find members, not a full parser) ===== */

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' ||
                     s[i] == '\r'))
        i++;
    return i;
}

/* Index just past the string starting at s[i] == '"', or 0 on error. */
static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
        else if ((unsigned char)s[i] < 0x20)
            return 0;
    }
    return 0;
}

/* Index just past the value starting at s[i], or 0 on error. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
    int depth = 0;

    if (i >= n)
        return 0;
    if (s[i] == '"')
        return skip_string(s, i, n);
    if (s[i] != '{' && s[i] != '[') {
        size_t start = i;

        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
               s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
            i++;
        return i > start ? i : 0;
    }
    for (; i < n; i++) {
        if (s[i] == '"') {
            size_t e = skip_string(s, i, n);

            if (!e)
                return 0;
            i = e - 1;
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
        } else if (s[i] == '}' || s[i] == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

/* ===== strict validation (RFC 8259) ===== */


static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_digit(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Index past a string at s[i] == '"' (escapes checked), or 0. */
static size_t strict_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (++i >= n)
                return 0;
            if (s[i] == 'u') {
                if (i + 4 >= n || !hex_digit(s[i + 1]) ||
                    !hex_digit(s[i + 2]) || !hex_digit(s[i + 3]) ||
                    !hex_digit(s[i + 4]))
                    return 0;
                i += 4;
            } else if (!strchr("\"\\/bfnrt", s[i]) || !s[i]) {
                return 0;
            }
        }
    }
    return 0;
}

/* Index past a number (RFC 8259 section 6) at s[i], or 0. */
static size_t strict_number(const char *s, size_t i, size_t n)
{
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && is_digit(s[i]))
        while (i < n && is_digit(s[i]))
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        if (++i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i;
}

static size_t strict_literal(const char *s, size_t i, size_t n,
                             const char *lit)
{
    size_t k = strlen(lit);

    return n - i >= k && !memcmp(s + i, lit, k) ? i + k : 0;
}

int sr__json_valid(const char *s, size_t len)
{
    char stack[SR__JSON_MAX_DEPTH]; /* the open brackets, innermost last */
    size_t depth = 0, i = skip_ws(s, 0, len);

    for (;;) {
        size_t e;

        /* a value at s[i] */
        if (i >= len)
            return 0;
        if (s[i] == '{' || s[i] == '[') {
            if (depth == SR__JSON_MAX_DEPTH)
                return 0;
            stack[depth++] = s[i];
            i = skip_ws(s, i + 1, len);
            if (i < len && s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
                depth--;
                i++;
                goto after_value;
            }
            if (stack[depth - 1] == '{')
                goto member;
            continue;
        }
        if (s[i] == '"')
            e = strict_string(s, i, len);
        else if (s[i] == '-' || is_digit(s[i]))
            e = strict_number(s, i, len);
        else if (s[i] == 't')
            e = strict_literal(s, i, len, "true");
        else if (s[i] == 'f')
            e = strict_literal(s, i, len, "false");
        else if (s[i] == 'n')
            e = strict_literal(s, i, len, "null");
        else
            return 0;
        if (!e)
            return 0;
        i = e;
    after_value:
        i = skip_ws(s, i, len);
        if (!depth)
            return i == len;
        if (i < len && s[i] == ',') {
            i = skip_ws(s, i + 1, len);
            if (stack[depth - 1] == '{')
                goto member;
            continue;
        }
        if (i < len && s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            depth--;
            i++;
            goto after_value;
        }
        return 0;
    member:
        /* "key" : then the value */
        if (i >= len || s[i] != '"')
            return 0;
        e = strict_string(s, i, len);
        if (!e)
            return 0;
        i = skip_ws(s, e, len);
        if (i >= len || s[i] != ':')
            return 0;
        i = skip_ws(s, i + 1, len);
    }
}

int sr__json_too_deep(const char *s, size_t len)
{
    size_t i, depth = 0;
    int in_string = 0;

    for (i = 0; i < len; i++) {
        char c = s[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > SR__JSON_MAX_DEPTH)
                return 1;
        } else if ((c == ']' || c == '}') && depth) {
            depth--;
        }
    }
    return 0;
}

int sr__json_is(const char *s, size_t len, char open)
{
    size_t i = skip_ws(s, 0, len);

    return i < len && s[i] == open && sr__json_valid(s, len);
}

size_t sr__json_count(const char *obj, size_t len, const char *key)
{
    size_t klen = strlen(key), pos = 0, kl, vl, count = 0;
    const char *k, *v;

    while (sr__json_next(obj, len, &pos, &k, &kl, &v, &vl))
        if (kl == klen && !memcmp(k, key, klen))
            count++;
    return count;
}

int sr__json_next(const char *s, size_t len, size_t *pos, const char **key,
                  size_t *klen, const char **val, size_t *vlen)
{
    size_t i = *pos, ve;
    int is_obj;

    if (i == 0) {
        i = skip_ws(s, 0, len);
        if (i >= len || (s[i] != '{' && s[i] != '['))
            return 0;
        i = skip_ws(s, i + 1, len);
        if (i < len && (s[i] == '}' || s[i] == ']'))
            return 0;
    } else {
        i = skip_ws(s, i, len);
        if (i >= len || s[i] != ',')
            return 0;
        i = skip_ws(s, i + 1, len);
    }
    is_obj = s[skip_ws(s, 0, len)] == '{';
    if (is_obj) {
        size_t ke;

        if (i >= len || s[i] != '"')
            return 0;
        ke = skip_string(s, i, len);
        if (!ke)
            return 0;
        if (key)
            *key = s + i + 1;
        if (klen)
            *klen = ke - i - 2;
        i = skip_ws(s, ke, len);
        if (i >= len || s[i] != ':')
            return 0;
        i = skip_ws(s, i + 1, len);
    } else {
        if (key)
            *key = NULL;
        if (klen)
            *klen = 0;
    }
    ve = skip_value(s, i, len);
    if (!ve)
        return 0;
    *val = s + i;
    *vlen = ve - i;
    *pos = ve;
    return 1;
}

int sr__json_member(const char *obj, size_t len, const char *key,
                    const char **val, size_t *vlen)
{
    size_t klen = strlen(key), pos = 0, kl;
    const char *k;

    pos = skip_ws(obj, 0, len);
    if (pos >= len || obj[pos] != '{')
        return 0;
    pos = 0; /* lenient: a truncated error body still yields members */
    /* Keys are compared raw: claim names never need escapes. */
    while (sr__json_next(obj, len, &pos, &k, &kl, val, vlen))
        if (kl == klen && !memcmp(k, key, klen))
            return 1;
    return 0;
}
