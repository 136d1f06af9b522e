/* fuzz_json_mp.c - the one-pass JSON -> MessagePack transcoder
 * (sr__json_to_mp) against the two-pass one it replaced, kept below as
 * the oracle (its numbers all go to sr__json_number_to_mp, the C
 * library's conversions; the new one reads short integers itself): for
 * every valid JSON text both give the same bytes (or both fail), a
 * counting writer counts what a storing writer stores, and the
 * MessagePack reads back as one value. */
#include "mpack.h"

#include <stdint.h>
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
        return sr__json_number_to_mp(w, s, n);
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
