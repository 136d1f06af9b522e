/* client.c - a client's lifetime and options, the temporary access key of
 * Entra ID clients, and the cache of the tokens requests are signed with. */
#include "internal.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_API_VERSION "2022-06-01"

void sr__lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* 1 for "v1"/"1.0"; 0 for a YYYY-MM-DD date no older than 2022-06-01. */
static int parse_api_version(const char *v, int *is_v1)
{
    int i;

    if (!strcmp(v, "v1") || !strcmp(v, "1.0")) {
        *is_v1 = 1;
        return 1;
    }
    *is_v1 = 0;
    if (strlen(v) < 10)
        return 0;
    for (i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? v[i] != '-' : !isdigit((unsigned char)v[i]))
            return 0;
    /* Dates compare as strings; allow suffixes like "-preview". */
    return strncmp(v, DEFAULT_API_VERSION, 10) >= 0 &&
           (v[10] == '\0' || v[10] == '-');
}

static int split_base(signalr_client *c)
{
    const char *b = signalr_connstr_server_endpoint(c->cs);
    const char *h, *colon;

    c->tls = !strncmp(b, "https://", 8);
    h = b + (c->tls ? 8 : 7);
    if (*h == '[') {
        const char *close = strchr(h, ']');

        c->host = sr__strndup(h + 1, (size_t)(close - h - 1));
        colon = strchr(close, ':');
    } else {
        colon = strchr(h, ':');
        c->host = sr__strndup(h, colon ? (size_t)(colon - h) : strlen(h));
    }
    c->port = colon ? atoi(colon + 1) : (c->tls ? 443 : 80);
    c->base = sr__strdup(b);
    return c->host && c->base;
}

signalr_err signalr_client_new(const char *connstr, size_t len,
                               const signalr_client_options *o,
                               signalr_client **out, signalr_error *err)
{
    signalr_client_options none;
    signalr_client *c;
    signalr_err rc;
    int is_v1 = 0;

    *out = NULL;
    if (!o) {
        memset(&none, 0, sizeof(none));
        o = &none;
    }
    if (o->api_version && !parse_api_version(o->api_version, &is_v1))
        return sr__fail(err, SIGNALR_EINVAL,
                        "api_version must be \"v1\" or a date "
                        "\"YYYY-MM-DD\" from \"2022-06-01\" on");
    if (o->application &&
        sr__validate_name("application name", o->application,
                          strlen(o->application), err))
        return SIGNALR_EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    rc = signalr_connstr_parse(connstr, len, &c->cs, err);
    if (rc) {
        free(c);
        return rc;
    }
    if (!is_v1)
        c->api_version = sr__strdup(o->api_version ? o->api_version
                                                   : DEFAULT_API_VERSION);
    if (o->application) {
        c->application = sr__strdup(o->application);
        if (c->application)
            sr__lower(c->application);
    }
    c->user_agent = sr__strdup(o->user_agent ? o->user_agent
                                             : "lua-signalr/" SIGNALR_VERSION);
    c->product_info = sr__strdup(o->product_info
                                     ? o->product_info
                                     : "lua-signalr/" SIGNALR_VERSION);
    c->lifetime = o->token_lifetime > 0 ? o->token_lifetime
                                        : SR__DEFAULT_LIFETIME;
    c->token_fn = o->token_fn;
    c->token_ud = o->token_ud;
    if ((!is_v1 && !c->api_version) || (o->application && !c->application) ||
        !c->user_agent || !c->product_info || !split_base(c)) {
        signalr_client_free(c);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    if (strpbrk(c->user_agent, "\r\n") || strpbrk(c->product_info, "\r\n")) {
        signalr_client_free(c);
        return sr__fail(err, SIGNALR_EINVAL,
                        "user_agent and product_info must not contain line "
                        "breaks");
    }
    *out = c;
    return SIGNALR_OK;
}

static void slot_clear(sr__token_slot *t)
{
    free(t->aud);
    free(t->bearer);
    memset(t, 0, sizeof(*t));
}

void signalr_client_free(signalr_client *c)
{
    int i;

    if (!c)
        return;
    for (i = 0; i < SR__TOKEN_SLOTS; i++)
        slot_clear(&c->tokens[i]);
    signalr_client_set_access_key(c, NULL, NULL, 0, NULL);
    signalr_connstr_free(c->cs);
    free(c->api_version);
    free(c->application);
    free(c->user_agent);
    free(c->product_info);
    free(c->host);
    free(c->base);
    free(c);
}

const signalr_connstr *signalr_client_connstr(const signalr_client *c)
{
    return c->cs;
}

int signalr_client_is_v1(const signalr_client *c)
{
    return c->api_version == NULL;
}

signalr_err signalr_client_set_access_key(signalr_client *c, const char *kid,
                                          const char *key, size_t keylen,
                                          signalr_error *err)
{
    char *k = NULL, *id = NULL, *tok = NULL;
    signalr_err rc;

    sr__ok(err);
    if (key && signalr_connstr_has_key(c->cs))
        return sr__fail(err, SIGNALR_EINVAL,
                        "the connection string has an AccessKey: a "
                        "temporary key is only for Entra ID clients");
    if (key && !keylen)
        return sr__fail(err, SIGNALR_EINVAL, "the access key is empty");
    if (key) {
        /* the kid rules are the header's: try them on a dummy token */
        rc = signalr_jwt_sign_kid("{}", 2, (const unsigned char *)"k", 1,
                                  kid ? kid : "", &tok, NULL, err);
        free(tok);
        if (rc)
            return rc;
        k = sr__strndup(key, keylen);
        id = sr__strdup(kid);
        if (!k || !id) {
            free(k);
            free(id);
            return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        }
    }
    if (c->temp_key) {
        OPENSSL_cleanse(c->temp_key, c->temp_keylen);
        free(c->temp_key);
    }
    free(c->temp_kid);
    c->temp_key = k;
    c->temp_kid = id;
    c->temp_keylen = key ? keylen : 0;
    return SIGNALR_OK;
}

/* ===== tokens ===== */

static unsigned long hash(const char *s)
{
    unsigned long h = 5381;

    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

signalr_err sr__sign_claims(const signalr_client *c, const char *aud,
                            time_t now, long lifetime, const char *extra,
                            size_t extralen, char **tok, size_t *toklen,
                            signalr_error *err)
{
    sr__buf b = {0};
    const char *key;
    size_t keylen, n;
    char *payload;
    signalr_err rc;

    key = sr__connstr_key(c->cs, &keylen);
    if (!key) { /* Entra ID: the temporary key, its id in the header */
        key = c->temp_key;
        keylen = c->temp_keylen;
    }
    sr__buf_adds(&b, "{\"aud\":");
    sr__buf_add_json_string(&b, aud, strlen(aud));
    sr__buf_addf(&b, ",\"exp\":%ld", (long)now + lifetime);
    sr__buf_addf(&b, ",\"iat\":%ld", (long)now);
    if (extra) {
        sr__buf_add(&b, ",", 1);
        sr__buf_add(&b, extra, extralen);
    }
    sr__buf_add(&b, "}", 1);
    payload = sr__buf_take(&b, &n);
    if (!payload)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    rc = signalr_jwt_sign_kid(payload, n, (const unsigned char *)key, keylen,
                              key == c->temp_key ? c->temp_kid : NULL, tok,
                              toklen, err);
    free(payload);
    return rc;
}

signalr_err sr__bearer_for(signalr_client *c, const char *aud, time_t now,
                           const char **out, char **owned,
                           signalr_error *err)
{
    sr__token_slot *t;
    long margin = c->lifetime / 5 < 300 ? c->lifetime / 5 : 300;
    char *tok, *bearer;
    size_t n;
    signalr_err rc;
    int same;

    *owned = NULL;
    if (!signalr_connstr_has_key(c->cs)) {
        char buf[8192];

        if (!c->token_fn)
            return sr__fail(err, SIGNALR_EINVAL,
                            "AuthType=%s needs a token provider "
                            "(no AccessKey to sign with)",
                            signalr_connstr_auth_type(c->cs));
        n = c->token_fn(c->token_ud, aud, buf, sizeof(buf));
        if (!n || n >= sizeof(buf))
            return sr__fail(err, SIGNALR_EINVAL,
                            "the token provider returned no token");
        bearer = malloc(n + 8);
        if (!bearer)
            return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        memcpy(bearer, "Bearer ", 7);
        memcpy(bearer + 7, buf, n + 1);
        *owned = bearer;
        *out = bearer;
        return SIGNALR_OK;
    }
    /* an audience's slot is the one its hash picks: the last slot used,
     * when it holds this audience, is that one */
    t = c->last_slot;
    same = t && t->aud && !strcmp(t->aud, aud);
    if (!same) {
        t = &c->tokens[hash(aud) % SR__TOKEN_SLOTS];
        same = t->aud && !strcmp(t->aud, aud);
    }
    if (same && now >= t->iat && now < t->exp - margin) {
        c->last_slot = t;
        *out = t->bearer;
        return SIGNALR_OK;
    }
    rc = sr__sign_claims(c, aud, now, c->lifetime, NULL, 0, &tok, &n, err);
    if (rc)
        return rc;
    bearer = malloc(n + 8);
    if (!bearer) {
        free(tok);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    memcpy(bearer, "Bearer ", 7);
    memcpy(bearer + 7, tok, n + 1);
    free(tok);
    if (!t->aud || strcmp(t->aud, aud)) {
        char *a = sr__strdup(aud);

        if (!a) {
            free(bearer);
            return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        }
        slot_clear(t);
        t->aud = a;
    }
    free(t->bearer);
    t->bearer = bearer;
    t->iat = now;
    t->exp = now + c->lifetime;
    c->last_slot = t;
    *out = bearer;
    return SIGNALR_OK;
}
