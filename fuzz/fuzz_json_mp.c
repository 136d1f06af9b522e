/* fuzz_json_mp.c - the one-pass JSON -> MessagePack transcoder
 * (sr__json_to_mp) against the two-pass one it replaced, kept below as
 * the oracle: for every valid JSON text both give the same bytes (or
 * both fail), a counting writer counts what a storing writer stores, and
 * the MessagePack reads back as one value. */
#include "mpack.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ===== the oracle: the transcoder before the one-pass rewrite ===== */

static int ref_to_mp(sr__mpw *w, const char *s, size_t n, int depth);

static int ref_container(sr__mpw *w, const char *s, size_t n, int depth)
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
        if (obj && ref_to_mp(w, k - 1, kl + 2, depth + 1))
            return -1;
        if (ref_to_mp(w, v, vl, depth + 1))
            return -1;
    }
    return 0;
}

/* The C library's number conversions follow LC_NUMERIC, which a host
 * may set; JSON's decimal point is always '.'.  The locale's point, as
 * printf writes it (re-entrant, unlike localeconv()). */
static void ref_point(char point[8])
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
static int ref_strtod(const char *s, size_t n, double *d)
{
    char point[8], small[80], *t = small;
    size_t i, o = 0, pl;

    ref_point(point);
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

static int ref_number(sr__mpw *w, const char *s, size_t n)
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
        if (ref_strtod(s, n, &d))
            return -1;
        sr__mpw_double(w, d);
    }
    return 0;
}

static int ref_to_mp(sr__mpw *w, const char *s, size_t n, int depth)
{
    size_t len;

    if (depth > SR__MP_MAX_DEPTH)
        return -1;
    switch (s[0]) {
    case '{':
    case '[':
        return ref_container(w, s, n, depth);
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
        return ref_number(w, s, n);
    }
}

/* ===== the comparison ===== */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    sr__mpw a = { NULL, 0, 0, 1, 0 }, b = { NULL, 0, 0, 1, 0 };
    sr__mpw c = { NULL, 0, 0, 0, 0 };
    size_t start = 0, end = size;
    int ra, rb, rc;

    if (!sr__json_valid(s, size))
        return 0;
    while (start < size && strchr(" \t\r\n", s[start]))
        start++;
    while (end > start && strchr(" \t\r\n", s[end - 1]))
        end--; /* the oracle took one value without blanks around it */
    ra = sr__json_to_mp(&a, s, size, 0);
    rb = ref_to_mp(&b, s + start, end - start, 0);
    rc = sr__json_to_mp(&c, s, size, 0);
    if (ra != rb || ra != rc)
        abort();
    if (!ra) {
        sr__mpw f = { NULL, 0, 0, 0, 0 };
        sr__mpr r;

        if (a.len != b.len || memcmp(a.p, b.p, a.len) || c.len != a.len)
            abort();
        /* a storing writer into a buffer of the counted size */
        f.p = malloc(c.len ? c.len : 1); /* exactly: an overrun is caught */
        if (!f.p)
            abort();
        if (sr__json_to_mp(&f, s, size, 0) || f.len != c.len ||
            memcmp(f.p, a.p, a.len))
            abort();
        free(f.p);
        r.p = a.p;
        r.n = a.len;
        r.i = 0;
        if (sr__mpr_pass(&r, 0) == 0 && r.i != r.n)
            abort();
    }
    free(a.p);
    free(b.p);
    return 0;
}
