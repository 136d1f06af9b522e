/* json_mpack.c - JSON text to MessagePack: the arguments a hub message
 * carries are JSON for the Lua layer (it decodes them with cjson) and
 * MessagePack for the clients that chose that protocol. */
#include "mpack.h"

#include <errno.h>
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

static int json_number(sr__mpw *w, const char *s, size_t n)
{
    char tmp[64];
    size_t i;
    int integral = 1;

    if (n >= sizeof tmp)
        integral = 0; /* too many digits for an int64: a double */
    for (i = 0; i < n && integral; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
            integral = 0;
    if (n < sizeof tmp) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
    }
    if (integral) {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(tmp, &end, 10);
        if (!errno && *end == '\0') {
            sr__mpw_int(w, v);
            return 0;
        }
    }
    {
        double d;
        uint64_t bits;
        if (n < sizeof tmp) {
            d = strtod(tmp, NULL);
        } else {
            char *big = sr__strndup(s, n);
            if (!big)
                return -1;
            d = strtod(big, NULL);
            free(big);
        }
        memcpy(&bits, &d, sizeof bits);
        sr__mpw_byte(w, 0xcb);
        sr__mpw_be(w, bits, 8);
    }
    return 0;
}

int sr__json_to_mp(sr__mpw *w, const char *s, size_t n, int depth)
{
    size_t len;

    if (depth > 600)
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
        sr__mpw_byte(w, 0xc3);
        return 0;
    case 'f':
        sr__mpw_byte(w, 0xc2);
        return 0;
    case 'n':
        sr__mpw_byte(w, 0xc0);
        return 0;
    default:
        return json_number(w, s, n);
    }
}
