/* url.c - RFC 3986 percent-encoding and decoding. */
#include "internal.h"

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

size_t signalr_url_encode(char *dst, size_t dstlen, const char *src,
                          size_t srclen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, o = 0, w = 0; /* o: length needed, w: bytes written */

    for (i = 0; i < srclen; i++) {
        unsigned char c = (unsigned char)src[i];
        size_t unit = unreserved(c) ? 1 : 3;

        /* Write whole units only, so a cut never leaves half an escape. */
        if (w == o && o + unit < dstlen) {
            if (unit == 1) {
                dst[w] = (char)c;
            } else {
                dst[w] = '%';
                dst[w + 1] = hex[c >> 4];
                dst[w + 2] = hex[c & 15];
            }
            w += unit;
        }
        o += unit;
    }
    if (dstlen)
        dst[w] = '\0';
    return o;
}

int sr__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t signalr_url_decode(char *dst, const char *src, size_t srclen,
                          int plus_is_space)
{
    size_t i, o = 0;

    for (i = 0; i < srclen; i++) {
        char c = src[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= srclen)
                return (size_t)-1;
            hi = sr__hexval(src[i + 1]);
            lo = sr__hexval(src[i + 2]);
            if (hi < 0 || lo < 0)
                return (size_t)-1;
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = c;
        }
    }
    dst[o] = '\0';
    return o;
}
