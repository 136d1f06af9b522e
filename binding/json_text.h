/* json_text.h - the binding's JSON text engine in plain C99 (no Lua): a
 * growable buffer, the writers of strings and numbers, and a parser that
 * hands what it reads to a visitor.  json.c builds core.json_encode and
 * core.json_decode on it; a fuzzer can drive it alone (sr_json_fuzz_one).
 *
 * Caveats: the parser follows RFC 8259 strictly (no comments, no
 * trailing commas, no NaN, no leading '+' or zeros, no BOM); strings
 * must be valid UTF-8 and \u escapes may not leave a lone surrogate; a
 * number too large for a double is an error, not infinity.  Numbers are
 * read and written whatever the C locale's decimal point is. */
#ifndef SIGNALR_JSON_TEXT_H
#define SIGNALR_JSON_TEXT_H

#include <stddef.h>

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden) /* private to the module */
#endif

/* Bytes in p[0..len), cap allocated (malloc/realloc; free with
 * sr_json_buf_free).  A zeroed buffer is empty. */
typedef struct {
    char *p;
    size_t len, cap;
} sr_json_buf;

/* Room for more bytes after len: 0, or -1 when out of memory (the
 * buffer is unchanged). */
int sr_json_buf_reserve(sr_json_buf *b, size_t more);
void sr_json_buf_free(sr_json_buf *b);

/* ===== writers: each appends to b; 0, -1 out of memory ===== */

/* s[0..n) as a JSON string with its quotes (RFC 8259 section 7: '"',
 * '\\' and control characters escaped, the short forms where there is
 * one; '/' and non-ASCII as they are).  -2 when s is not valid UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included):
 * *bad_at (may be NULL) is then the 1-based offset of the first bad byte
 * and b->len is as it was. */
int sr_json_put_string(sr_json_buf *b, const char *s, size_t n,
                       size_t *bad_at);
int sr_json_put_integer(sr_json_buf *b, long long v);
/* A double in the fewest significant digits (at most 17) that read back
 * to it; an integral value of magnitude at most 2^53 as an integer
 * ("1", "-0").  -2 for NaN and infinities. */
int sr_json_put_double(sr_json_buf *b, double d);
/* The same text into out (NUL-terminated); its length, 0 for NaN and
 * infinities. */
size_t sr_json_format_double(double d, char out[40]);

/* ===== parser ===== */

/* What the parser found, in document order.  Strings are decoded UTF-8
 * (borrowed: valid until the callback returns; NUL bytes possible from
 * \u0000).  item() follows each element of an array with its 1-based
 * index; key() comes before an object member's value and member() after
 * it.  A callback returning non-zero stops the parse (SR_JSON_ECALLBACK).
 * Numbers: integer() for a literal without fraction or exponent that
 * fits 64 bits ("-0" excepted), number() for the others. */
typedef struct {
    int (*null)(void *ud);
    int (*boolean)(void *ud, int b);
    int (*integer)(void *ud, long long v);
    int (*number)(void *ud, double d);
    int (*string)(void *ud, const char *s, size_t n);
    int (*begin)(void *ud, int array);
    int (*key)(void *ud, const char *s, size_t n);
    int (*item)(void *ud, size_t index);
    int (*member)(void *ud);
    int (*end)(void *ud, int array, size_t count);
} sr_json_visitor;

enum {
    SR_JSON_OK = 0,
    SR_JSON_ESYNTAX,   /* not JSON, or not valid UTF-8 */
    SR_JSON_EDEPTH,    /* nested deeper than allowed */
    SR_JSON_ERANGE,    /* a number past the largest double */
    SR_JSON_ENOMEM,
    SR_JSON_ECALLBACK  /* a callback said stop */
};

typedef struct {
    int code;          /* SR_JSON_* */
    size_t pos;        /* 1-based byte offset where the problem is */
    char msg[128];     /* "<what> at byte <pos>" */
} sr_json_error;

/* Parse the one JSON value in s[0..n) (white space around it allowed).
 * max_depth: how deeply arrays and objects may nest (1: no container
 * inside another).  scratch: where escaped strings and long numbers are
 * decoded (grown as needed, never freed here: its owner frees it); the
 * parser allocates nothing else, so a callback may longjmp out.
 * Returns SR_JSON_OK or the error's code (e may be NULL). */
int sr_json_parse(const char *s, size_t n, int max_depth,
                  const sr_json_visitor *v, void *ud, sr_json_buf *scratch,
                  sr_json_error *e);

/* A fuzzing entry point (no Lua): parses data; when it is JSON, writes it
 * back canonically with the writers above, parses and writes that again
 * and abort()s unless both writings are equal; also abort()s when the
 * number writer's fast path disagrees with printf's shortest digits.
 * Returns 0 for JSON, 1 otherwise.  Frees everything it allocates. */
int sr_json_fuzz_one(const unsigned char *data, size_t size);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
