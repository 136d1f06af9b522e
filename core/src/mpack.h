/* mpack.h - private: the MessagePack writer and cursor reader (mpack.c)
 * and the JSON <-> MessagePack transcoders (json_mpack.c), shared by the
 * service protocol (svcproto.c) and the hub protocol (hubproto.c). */
#ifndef SIGNALR_MPACK_H
#define SIGNALR_MPACK_H

#include "internal.h"

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden)
#endif

/* ===== writing (mpack.c) ===== */

/* A writer that stores bytes (p != NULL: into a buffer of the right size,
 * or, grow set, one it enlarges) or only counts them (p == NULL, grow 0).
 * oom latches a failed enlargement; a growing writer's p is the caller's
 * to free. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    int grow, oom;
} sr__mpw;

/* Room for n more bytes (growing writers); 0 when there is none. */
int sr__mpw_room(sr__mpw *w, size_t n);

/* n bytes of s (inline: the encoders write a few bytes at a time). */
static inline void sr__mpw_raw(sr__mpw *w, const void *s, size_t n)
{
    if (w->p || w->grow) {
        if (w->oom || (w->grow && w->len + n > w->cap &&
                       !sr__mpw_room(w, n)))
            return;
        if (n)
            memcpy(w->p + w->len, s, n);
    }
    w->len += n;
}

static inline void sr__mpw_byte(sr__mpw *w, unsigned char c)
{
    sr__mpw_raw(w, &c, 1);
}
/* v's low `bytes` bytes, big-endian. */
void sr__mpw_be(sr__mpw *w, uint64_t v, int bytes);
/* Integers in their smallest encoding; nil, booleans, float64. */
void sr__mpw_uint(sr__mpw *w, uint64_t v);
void sr__mpw_int(sr__mpw *w, int64_t v);
void sr__mpw_nil(sr__mpw *w);
void sr__mpw_bool(sr__mpw *w, int v);
void sr__mpw_double(sr__mpw *w, double d);
/* A header of n for the fix form (fix | n when n <= fixmax; fix 0: no
 * fix form) or the 8/16/32-bit forms (c8 0: no 8-bit form).  Inline for
 * the fix form, the one a frame's own fields take. */
void sr__mpw_head_wide(sr__mpw *w, size_t n, unsigned char c8,
                       unsigned char c16, unsigned char c32);
static inline void sr__mpw_head(sr__mpw *w, size_t n, unsigned char fix,
                                size_t fixmax, unsigned char c8,
                                unsigned char c16, unsigned char c32)
{
    if (fix && n <= fixmax)
        sr__mpw_byte(w, (unsigned char)(fix | n));
    else
        sr__mpw_head_wide(w, n, c8, c16, c32);
}
static inline void sr__mpw_array(sr__mpw *w, size_t n)
{
    sr__mpw_head(w, n, 0x90, 15, 0, 0xdc, 0xdd);
}
static inline void sr__mpw_map(sr__mpw *w, size_t n)
{
    sr__mpw_head(w, n, 0x80, 15, 0, 0xde, 0xdf);
}
/* A string; s == NULL writes nil. */
static inline void sr__mpw_str(sr__mpw *w, const char *s, size_t n)
{
    if (!s) {
        sr__mpw_byte(w, 0xc0);
        return;
    }
    sr__mpw_head(w, n, 0xa0, 31, 0xd9, 0xda, 0xdb);
    sr__mpw_raw(w, s, n);
}
/* The size of the header sr__mpw_str writes for n bytes. */
static inline size_t sr__mp_str_head_len(size_t n)
{
    return n <= 31 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}
void sr__mpw_strz(sr__mpw *w, const char *s);
static inline void sr__mpw_bin_head(sr__mpw *w, size_t n)
{
    sr__mpw_head(w, n, 0, 0, 0xc4, 0xc5, 0xc6);
}

/* The frame prefix (hub protocol "binary encoding", service protocol):
 * 7 bits a byte, least significant group first, high bit = more. */
size_t sr__varint_len(size_t n);
void sr__mpw_varint(sr__mpw *w, size_t n);
/* Read a prefix from buf[0..len): 1 with *n the value (up to 2^35 - 1:
 * the caller checks the 2^31 - 1 limit) and *k its bytes, 0 when it is
 * incomplete, -1 when it is longer than 5 bytes. */
int sr__varint_read(const unsigned char *buf, size_t len, uint64_t *n,
                    size_t *k);

/* A whole frame, [varint length][body], for a body fn writes (into a
 * growing writer, once): *out is NUL-terminated, owned by the caller
 * (signalr_free).  ETOOBIG when the body is over max bytes. */
typedef void (*sr__mp_body_fn)(sr__mpw *w, const void *ctx);
signalr_err sr__mp_frame(sr__mp_body_fn fn, const void *ctx, size_t max,
                         char **out, size_t *out_len, signalr_error *err);

/* ===== reading (mpack.c) =====
 * A cursor over one message's bytes; it allocates nothing, so a count a
 * message declares can never make it reserve memory.  Every function
 * returns 0 with the cursor past what it read, or -1 (cursor unspecified)
 * when the bytes there are not what was asked or run out. */
typedef struct {
    const unsigned char *p;
    size_t n, i;
} sr__mpr;

/* The length of a str/bin/array/map header ('s', 'b', 'a', 'm'). */
int sr__mpr_len(sr__mpr *r, char kind, size_t *len);
/* An integer of any width that fits an int64; one that fits a uint64. */
int sr__mpr_int(sr__mpr *r, int64_t *v);
int sr__mpr_uint(sr__mpr *r, uint64_t *v);
/* A float32 or float64; a boolean (0 or 1). */
int sr__mpr_double(sr__mpr *r, double *d);
int sr__mpr_bool(sr__mpr *r, int *v);
/* A string, bin or nil: *s borrowed from the bytes (NULL for nil). */
int sr__mpr_str(sr__mpr *r, const char **s, size_t *len);
/* Pass over one value of any type (start with depth 0): containers at
 * most 64 deep. */
int sr__mpr_pass(sr__mpr *r, int depth);

/* ===== JSON <-> MessagePack (json_mpack.c) ===== */

/* sr__mp_to_json's message for values nested past its depth (a caller
 * tells that failure from the others by it). */
#define SR__MP_TOO_DEEP "values nested too deep"

/* Nesting sr__json_to_mp allows (sr__json_valid allows less). */
#define SR__MP_MAX_DEPTH 600

/* One JSON value (already validated: sr__json_valid) as MessagePack:
 * integers that fit an int64 or a uint64 as integers, other numbers as
 * float64, strings unescaped.  -1 on a bad escape (a lone surrogate
 * included), too deep, or out of memory for a very long number. */
int sr__json_to_mp(sr__mpw *w, const char *s, size_t n, int depth);
/* One JSON number, s[0..n), by the C library: an integer that fits an
 * int64 or a uint64 (strtoll, strtoull) as an integer, else a float64
 * (strtod, whatever the locale's decimal point); -1 when out of memory
 * for a very long number.  sr__json_to_mp reads short integers itself
 * and calls this for the rest. */
int sr__json_number_to_mp(sr__mpw *w, const char *s, size_t n);
/* Decode the JSON string literal s[0..n) (quotes included) into out, or
 * only count when out is NULL; the decoded length, (size_t)-1 on a bad
 * escape (or a \u escape of a lone surrogate).  Never longer than n. */
size_t sr__json_unescape(const char *s, size_t n, unsigned char *out);
/* One MessagePack value at r appended to out as JSON text (see
 * json_mpack.c's caveats); containers nest at most depth_left deep.  -1
 * with err (EPROTOCOL) on a value JSON cannot carry or malformed bytes;
 * out may then hold part of the text.  out->oom is the caller's to
 * check. */
int sr__mp_to_json(sr__mpr *r, sr__buf *out, int depth_left,
                   signalr_error *err);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
