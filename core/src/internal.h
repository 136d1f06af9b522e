/* internal.h - private declarations shared by the core's files. */
#ifndef SIGNALR_INTERNAL_H
#define SIGNALR_INTERNAL_H

#include "signalr.h"

#include <stdarg.h>

/* Everything declared from here on stays inside the library, however it is
 * built: the Makefile passes -fvisibility=hidden, but LuaRocks' builtin
 * backend takes no compiler flags.  SIGNALR_API declarations keep their
 * explicit default visibility. */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden)
#endif

/* Fill err (may be NULL) with code and a printf-style message; returns
 * code so callers can `return sr__fail(...)`. */
signalr_err sr__fail(signalr_error *err, signalr_err code, const char *fmt,
                     ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Reset err to SIGNALR_OK with empty fields (NULL ok). */
void sr__ok(signalr_error *err);

/* Log, through o->log when set, that attempt number `attempt` of op
 * (SIGNALR_OP_MAX: an identity request) failed with rc (detail e, may be
 * NULL) and is tried again in delay_ms. */
void sr__log_retry(const signalr_http_options *o, signalr_op op,
                   int attempt, signalr_err rc, const signalr_error *e,
                   long delay_ms);

char *sr__strndup(const char *s, size_t n);
char *sr__strdup(const char *s);

/* Growable byte buffer; `oom` latches the first allocation failure so a
 * sequence of appends needs one check at the end. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sr__buf;

void sr__buf_add(sr__buf *b, const char *s, size_t n);
void sr__buf_adds(sr__buf *b, const char *s);
void sr__buf_addf(sr__buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Append s percent-encoded (RFC 3986 unreserved kept). */
void sr__buf_add_escaped(sr__buf *b, const char *s, size_t n);
/* Append s as a JSON string literal with quotes. */
void sr__buf_add_json_string(sr__buf *b, const char *s, size_t n);
/* NUL-terminate and hand over p (NULL after oom); b is reset. */
char *sr__buf_take(sr__buf *b, size_t *len);
void sr__buf_free(sr__buf *b);

/* base64url without padding (RFC 7515 section 2). */
size_t sr__b64url_encode(char *dst, const unsigned char *src, size_t n);
/* Returns decoded length or (size_t)-1; dst holds n * 3 / 4 + 3 bytes. */
size_t sr__b64url_decode(unsigned char *dst, const char *src, size_t n);
/* One base64url segment decoded into a new NUL-terminated buffer (the
 * caller frees it; *outlen its length), or NULL (no memory, not base64url). */
char *sr__b64url_decode_dup(const char *s, size_t n, size_t *outlen);

/* 0-15 for a hex digit, -1 otherwise (url.c). */
int sr__hexval(char c);

/* HMAC-SHA256 (the only OpenSSL use, in jwt.c). */
signalr_err sr__hmac_sha256(const unsigned char *key, size_t keylen,
                            const char *data, size_t n,
                            unsigned char out[32]);

/* Find top-level member `key` of JSON object text.  On success *val points
 * at the value's first byte and *vlen spans the whole value (a string
 * value includes its quotes).  Returns 0 when absent or malformed. */
int sr__json_member(const char *obj, size_t len, const char *key,
                    const char **val, size_t *vlen);
/* Iterate the top-level members of a JSON object (or the elements of an
 * array) in s: start with *pos = 0; each call that returns 1 sets *key and
 * *klen to the raw key text without quotes (NULL, 0 for arrays) and
 * *val and *vlen to the whole value.  Returns 0 at the end or on bad input. */
int sr__json_next(const char *s, size_t len, size_t *pos, const char **key,
                  size_t *klen, const char **val, size_t *vlen);
/* 1 when s is exactly one JSON value (RFC 8259, surrounding white space
 * allowed, at most SR__JSON_MAX_DEPTH levels deep). */
#define SR__JSON_MAX_DEPTH 512
int sr__json_valid(const char *s, size_t len);
/* 1 when s opens more than SR__JSON_MAX_DEPTH arrays and objects at once
 * (strings skipped; the rest not checked): why sr__json_valid refused a
 * text, for the message only. */
int sr__json_too_deep(const char *s, size_t len);
/* 1 when s is one valid JSON value of the given bracket kind, '[' or '{'. */
int sr__json_is(const char *s, size_t len, char open);
/* How many top-level members of the object obj are named key. */
size_t sr__json_count(const char *obj, size_t len, const char *key);

/* 0 when s[0..len) is valid UTF-8 (RFC 3629), else the 1-based position
 * of the first byte that is not. */
size_t sr__utf8_bad(const char *s, size_t len);
/* EINVAL unless json (JSON text to send) is valid UTF-8; `what` names
 * it in the message ("arguments", "commands"). */
signalr_err sr__check_utf8(const char *what, const char *json, size_t len,
                           signalr_error *err);

/* The hub-name rule, with `what` naming the thing in messages. */
signalr_err sr__validate_name(const char *what, const char *s, size_t len,
                              signalr_error *err);

/* Connection string parts the client needs (connstr.c). */
const char *sr__connstr_key(const signalr_connstr *cs, size_t *len);

/* ===== clients (client.c), shared with request.c and negotiate.c ===== */

#define SR__DEFAULT_LIFETIME 3600 /* seconds a token is valid */
#define SR__TOKEN_SLOTS 64

typedef struct {
    char *aud;
    char *bearer;     /* "Bearer <jwt>" */
    time_t iat, exp;
} sr__token_slot;

struct signalr_client {
    signalr_connstr *cs;
    char *api_version;  /* NULL for v1 */
    char *application;  /* lower-cased, NULL when none */
    char *user_agent;
    char *product_info; /* Asrs-User-Agent */
    long lifetime;
    signalr_token_fn token_fn;
    void *token_ud;
    /* server endpoint, split once */
    char *host;
    int port, tls;
    char *base;         /* scheme://host[:port] used for requests */
    sr__token_slot tokens[SR__TOKEN_SLOTS];
    /* the slot the last token came from (NULL: none yet): a client that
     * sends to one audience over and over finds it without hashing */
    sr__token_slot *last_slot;
    /* Entra ID: the temporary access key negotiate signs with */
    char *temp_kid, *temp_key;
    size_t temp_keylen;
};

/* Lower-case s in place (ASCII): hub names and the application name. */
void sr__lower(char *s);
/* Sign {"aud":...,"exp":...,"iat":...[,extra members]} with the key. */
signalr_err sr__sign_claims(const signalr_client *c, const char *aud,
                            time_t now, long lifetime, const char *extra,
                            size_t extralen, char **tok, size_t *toklen,
                            signalr_error *err);
/* Return a borrowed "Bearer <token>" for aud, signing when the cached one
 * is missing or due; *owned gets a string to free for callback tokens. */
signalr_err sr__bearer_for(signalr_client *c, const char *aud, time_t now,
                           const char **out, char **owned,
                           signalr_error *err);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
