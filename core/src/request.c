/* request.c - clients and the pure request builder: operation + params +
 * clock -> method, URL, headers (with the signed JWT) and body. */
#include "ops.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_API_VERSION "2022-06-01"
#define DEFAULT_LIFETIME 3600
#define TOKEN_SLOTS 64

typedef struct {
    char *aud;
    char *bearer;     /* "Bearer <jwt>" */
    time_t iat, exp;
} token_slot;

struct signalr_client {
    signalr_connstr *cs;
    char *api_version;  /* NULL for v1 */
    char *application;  /* lower-cased, NULL when none */
    char *user_agent;
    long lifetime;
    signalr_token_fn token_fn;
    void *token_ud;
    /* server endpoint, split once */
    char *host;
    int port, tls;
    char *base;         /* scheme://host[:port] used for requests */
    token_slot tokens[TOKEN_SLOTS];
};

static void lower(char *s)
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
            lower(c->application);
    }
    c->user_agent = sr__strdup(o->user_agent ? o->user_agent
                                             : "lua-signalr/" SIGNALR_VERSION);
    c->lifetime = o->token_lifetime > 0 ? o->token_lifetime
                                        : DEFAULT_LIFETIME;
    c->token_fn = o->token_fn;
    c->token_ud = o->token_ud;
    if ((!is_v1 && !c->api_version) || (o->application && !c->application) ||
        !c->user_agent || !split_base(c)) {
        signalr_client_free(c);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    if (strpbrk(c->user_agent, "\r\n")) {
        signalr_client_free(c);
        return sr__fail(err, SIGNALR_EINVAL,
                        "user_agent must not contain line breaks");
    }
    *out = c;
    return SIGNALR_OK;
}

static void slot_clear(token_slot *t)
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
    for (i = 0; i < TOKEN_SLOTS; i++)
        slot_clear(&c->tokens[i]);
    signalr_connstr_free(c->cs);
    free(c->api_version);
    free(c->application);
    free(c->user_agent);
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

/* ===== tokens ===== */

static unsigned long hash(const char *s)
{
    unsigned long h = 5381;

    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

/* Sign {"aud":...,"exp":...,"iat":...[,extra members]} with the key. */
static signalr_err sign_claims(const signalr_client *c, const char *aud,
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
    rc = signalr_jwt_sign(payload, n, (const unsigned char *)key, keylen,
                          tok, toklen, err);
    free(payload);
    return rc;
}

/* Return a borrowed "Bearer <token>" for aud, signing when the cached one
 * is missing or due; *owned gets a string to free for callback tokens. */
static signalr_err bearer_for(signalr_client *c, const char *aud, time_t now,
                              const char **out, char **owned,
                              signalr_error *err)
{
    token_slot *t = &c->tokens[hash(aud) % TOKEN_SLOTS];
    long margin = c->lifetime / 5 < 300 ? c->lifetime / 5 : 300;
    char *tok, *bearer;
    size_t n;
    signalr_err rc;

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
    if (t->aud && !strcmp(t->aud, aud) && now >= t->iat &&
        now < t->exp - margin) {
        *out = t->bearer;
        return SIGNALR_OK;
    }
    rc = sign_claims(c, aud, now, c->lifetime, NULL, 0, &tok, &n, err);
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
    *out = bearer;
    return SIGNALR_OK;
}

/* ===== building ===== */

static signalr_err check_params(const signalr_client *c,
                                const sr__op_row *row,
                                const signalr_params *p, signalr_error *err)
{
    signalr_err rc = SIGNALR_OK;
    size_t i;

    if (!(row->flags & F_NOHUB)) {
        if (!p->hub)
            return sr__fail(err, SIGNALR_EINVAL, "hub name is missing");
        rc = signalr_validate_hub(p->hub, strlen(p->hub), err);
    }
    if (!rc && (row->flags & F_USER))
        rc = signalr_validate_id("user id", p->user,
                                 p->user ? strlen(p->user) : 0, err);
    if (!rc && (row->flags & F_GROUP))
        rc = signalr_validate_group(p->group, p->group ? strlen(p->group) : 0,
                                    err);
    if (!rc && (row->flags & F_CONN))
        rc = signalr_validate_id("connection id", p->connection,
                                 p->connection ? strlen(p->connection) : 0,
                                 err);
    if (!rc && (row->flags & F_BODY))
        rc = signalr_validate_id("target", p->target,
                                 p->target ? strlen(p->target) : 0, err);
    if (rc)
        return rc;
    if ((row->flags & F_BODY) && p->arguments &&
        !sr__json_is(p->arguments, p->arguments_len, '['))
        return sr__fail(err, SIGNALR_EINVAL,
                        "arguments must be a JSON array");
    if ((row->flags & F_EXCLUDED) && p->excluded_count) {
        if (!c->api_version)
            return sr__fail(err, SIGNALR_EUNSUPPORTED,
                            "excluding connections needs api_version "
                            "2022-06-01 or later (v1 has no 'excluded')");
        for (i = 0; i < p->excluded_count; i++) {
            const char *x = p->excluded[i];

            rc = signalr_validate_id("excluded connection id", x,
                                     x ? strlen(x) : 0, err);
            if (rc)
                return rc;
        }
    }
    if ((row->flags & F_TTL) && p->ttl != SIGNALR_TTL_NONE &&
        (p->ttl < 0 || p->ttl > 2147483647L))
        return sr__fail(err, SIGNALR_EINVAL,
                        "ttl must be from 0 to 2147483647 seconds");
    return SIGNALR_OK;
}

/* Expand the row's path template after the hub prefix into b. */
static void add_path(sr__buf *b, const signalr_client *c,
                     const sr__op_row *row, const char *tmpl,
                     const signalr_params *p)
{
    const char *s;

    if (!(row->flags & F_NOHUB)) {
        char *hub = sr__strdup(p->hub);

        if (!hub) {
            b->oom = 1;
            return;
        }
        lower(hub);
        sr__buf_adds(b, c->api_version ? "/api/hubs/" : "/api/v1/hubs/");
        sr__buf_add_escaped(b, hub, strlen(hub));
        free(hub);
    }
    for (s = tmpl; *s; s++) {
        const char *v = NULL;

        if (*s == '%' && s[1]) {
            switch (*++s) {
            case 'u': v = p->user; break;
            case 'g': v = p->group; break;
            case 'c': v = p->connection; break;
            default: break;
            }
            if (v)
                sr__buf_add_escaped(b, v, strlen(v));
        } else {
            sr__buf_add(b, s, 1);
        }
    }
}

static void add_query(sr__buf *b, const signalr_client *c,
                      const sr__op_row *row, const signalr_params *p)
{
    char sep = '?';
    size_t i;

#define SEP() (sr__buf_add(b, &sep, 1), sep = '&')
    if (c->application && !(row->flags & F_NOHUB)) {
        SEP();
        sr__buf_adds(b, "application=");
        sr__buf_add_escaped(b, c->application, strlen(c->application));
    }
    if (c->api_version) {
        SEP();
        sr__buf_adds(b, "api-version=");
        sr__buf_add_escaped(b, c->api_version, strlen(c->api_version));
    }
    if (row->flags & F_EXCLUDED) {
        for (i = 0; i < p->excluded_count; i++) {
            SEP();
            sr__buf_adds(b, "excluded=");
            sr__buf_add_escaped(b, p->excluded[i], strlen(p->excluded[i]));
        }
    }
    if ((row->flags & F_REASON) && p->reason) {
        SEP();
        sr__buf_adds(b, "reason=");
        sr__buf_add_escaped(b, p->reason, strlen(p->reason));
    }
    if ((row->flags & F_TTL) && p->ttl != SIGNALR_TTL_NONE) {
        SEP();
        sr__buf_addf(b, "ttl=%ld", p->ttl);
    }
#undef SEP
}

static signalr_err add_body(signalr_request *r, const signalr_params *p,
                            signalr_error *err)
{
    sr__buf b = {0};

    sr__buf_adds(&b, "{\"target\":");
    sr__buf_add_json_string(&b, p->target, strlen(p->target));
    sr__buf_adds(&b, ",\"arguments\":");
    if (p->arguments)
        sr__buf_add(&b, p->arguments, p->arguments_len);
    else
        sr__buf_add(&b, "[]", 2);
    sr__buf_add(&b, "}", 1);
    r->body = sr__buf_take(&b, &r->body_len);
    if (!r->body)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    if (r->body_len > SIGNALR_MAX_BODY)
        return sr__fail(err, SIGNALR_ETOOBIG,
                        "message body is %lu bytes, the service accepts at "
                        "most %d (1 MB)",
                        (unsigned long)r->body_len, SIGNALR_MAX_BODY);
    r->content_type = "application/json; charset=utf-8";
    return SIGNALR_OK;
}

/* Size of the request head as transports send it. */
static size_t head_size(const signalr_request *r)
{
    size_t n = strlen(r->method) + 1 + strlen(r->path) + 11;

    n += 6 + strlen(r->host) + 8 + 2;                  /* Host */
    n += r->authorization ? 15 + strlen(r->authorization) + 2 : 0;
    n += 12 + strlen(r->user_agent) + 2;
    n += r->content_type ? 14 + strlen(r->content_type) + 2 : 0;
    n += 16 + 20 + 2 + 2;                              /* Content-Length */
    return n;
}

signalr_err signalr_request_build(signalr_client *c, signalr_op op,
                                  const signalr_params *p, time_t now,
                                  signalr_request *r, signalr_error *err)
{
    const sr__op_row *row = sr__op(op);
    const char *method, *tmpl, *bearer = NULL;
    sr__buf path = {0}, url = {0};
    char *aud, *owned = NULL;
    signalr_err rc;
    size_t n;

    memset(r, 0, sizeof(*r));
    sr__ok(err);
    if (!row)
        return sr__fail(err, SIGNALR_EINVAL, "unknown operation");
    method = c->api_version ? row->method : row->v1_method;
    tmpl = c->api_version ? row->path : row->v1_path;
    if (!tmpl)
        return sr__fail(err, SIGNALR_EUNSUPPORTED,
                        "%s needs api_version 2022-06-01 or later "
                        "(the v1 REST API has no such route)",
                        row->name);
    rc = check_params(c, row, p, err);
    if (rc)
        return rc;

    r->op = op;
    r->method = method;
    r->idempotent = (row->flags & F_IDEMPOTENT) != 0;
    r->user_agent = c->user_agent;
    r->port = c->port;
    r->tls = c->tls;
    r->host = sr__strdup(c->host);
    add_path(&path, c, row, tmpl, p);
    aud = sr__buf_take(&path, &n);
    if (!aud || !r->host) {
        free(aud);
        signalr_request_clear(r);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    /* path buffer now holds path + query for the request line */
    sr__buf_add(&path, aud, n);
    add_query(&path, c, row, p);
    r->path = sr__buf_take(&path, NULL);
    sr__buf_adds(&url, c->base);
    sr__buf_adds(&url, r->path ? r->path : "");
    r->url = sr__buf_take(&url, NULL);
    /* aud: the request URL of the service Endpoint, no port, no query */
    sr__buf_adds(&path, signalr_connstr_audience_base(c->cs));
    sr__buf_add(&path, aud, n);
    free(aud);
    aud = sr__buf_take(&path, NULL);
    if (!r->path || !r->url || !aud) {
        free(aud);
        signalr_request_clear(r);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    rc = SIGNALR_OK;
    if (row->flags & F_BODY)
        rc = add_body(r, p, err);
    if (!rc && !(row->flags & F_NOAUTH)) {
        if (p->bearer) {
            sr__buf_adds(&path, "Bearer ");
            sr__buf_adds(&path, p->bearer);
            r->authorization = sr__buf_take(&path, NULL);
            if (!r->authorization)
                rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
            else if (strpbrk(p->bearer, "\r\n"))
                rc = sr__fail(err, SIGNALR_EINVAL,
                              "bearer token contains a line break");
        } else {
            rc = bearer_for(c, aud, now, &bearer, &owned, err);
            if (!rc) {
                r->authorization = owned ? owned : sr__strdup(bearer);
                if (!r->authorization)
                    rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
            }
        }
    }
    free(aud);
    if (!rc) {
        size_t head = head_size(r);

        if (head > SIGNALR_MAX_HEADERS)
            rc = sr__fail(err, SIGNALR_ETOOBIG,
                          "request headers would be %lu bytes, the service "
                          "accepts at most %d (16 KB): shorten the names",
                          (unsigned long)head, SIGNALR_MAX_HEADERS);
    }
    if (rc)
        signalr_request_clear(r);
    return rc;
}

void signalr_request_clear(signalr_request *r)
{
    if (!r)
        return;
    free(r->url);
    free(r->host);
    free(r->path);
    free(r->authorization);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* ===== negotiate ===== */

static const char *const RESERVED[] = {
    "aud", "exp", "iat", "nbf", "nameid", "asrs.s.uid"
};

signalr_err signalr_client_negotiate(signalr_client *c, const char *hub,
                                     const char *user_id,
                                     const char *extra_claims, long lifetime,
                                     time_t now, char **url, char **token,
                                     signalr_error *err)
{
    sr__buf b = {0}, claims = {0};
    char *lhub, *aud, *extra;
    size_t i, n, toklen = 0;
    signalr_err rc;

    *url = *token = NULL;
    sr__ok(err);
    if (!hub)
        return sr__fail(err, SIGNALR_EINVAL, "hub name is missing");
    rc = signalr_validate_hub(hub, strlen(hub), err);
    if (!rc && user_id)
        rc = signalr_validate_id("user id", user_id, strlen(user_id), err);
    if (rc)
        return rc;
    if (!signalr_connstr_has_key(c->cs))
        return sr__fail(err, SIGNALR_EINVAL,
                        "negotiate needs an AccessKey to sign client tokens "
                        "(AuthType=%s has none)",
                        signalr_connstr_auth_type(c->cs));
    if (extra_claims) {
        size_t el = strlen(extra_claims);

        if (!sr__json_is(extra_claims, el, '{'))
            return sr__fail(err, SIGNALR_EINVAL,
                            "claims must be a JSON object");
        for (i = 0; i < sizeof(RESERVED) / sizeof(*RESERVED); i++) {
            const char *v;
            size_t vl;

            if (sr__json_member(extra_claims, el, RESERVED[i], &v, &vl))
                return sr__fail(err, SIGNALR_EINVAL,
                                "claim '%s' is set by negotiate itself",
                                RESERVED[i]);
        }
    }
    lhub = sr__strdup(hub);
    if (!lhub)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    lower(lhub);
    /* Service hub identity: lower(app)_lower(hub) when an app is set. */
    sr__buf_adds(&b, "/client/?hub=");
    if (c->application) {
        sr__buf_adds(&b, c->application);
        sr__buf_add(&b, "_", 1);
    }
    sr__buf_adds(&b, lhub);
    free(lhub);
    aud = sr__buf_take(&b, &n);
    if (!aud)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    sr__buf_adds(&b, signalr_connstr_client_endpoint(c->cs));
    sr__buf_add(&b, aud, n);
    *url = sr__buf_take(&b, NULL);
    sr__buf_adds(&b, signalr_connstr_audience_base(c->cs));
    sr__buf_add(&b, aud, n);
    free(aud);
    aud = sr__buf_take(&b, NULL);

    sr__buf_addf(&claims, "\"nbf\":%ld", (long)now);
    if (user_id) {
        sr__buf_adds(&claims, ",\"nameid\":");
        sr__buf_add_json_string(&claims, user_id, strlen(user_id));
        sr__buf_adds(&claims, ",\"asrs.s.uid\":");
        sr__buf_add_json_string(&claims, user_id, strlen(user_id));
    }
    if (extra_claims) {
        /* splice the object's members: drop its braces */
        const char *o = strchr(extra_claims, '{') + 1;
        const char *e = strrchr(extra_claims, '}');
        const char *q = o;

        while (q < e && strchr(" \t\r\n", *q))
            q++;
        if (q < e) {
            sr__buf_add(&claims, ",", 1);
            sr__buf_add(&claims, o, (size_t)(e - o));
        }
    }
    extra = sr__buf_take(&claims, &n);
    if (!*url || !aud || !extra) {
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    } else {
        rc = sign_claims(c, aud, now, lifetime > 0 ? lifetime
                                                   : DEFAULT_LIFETIME,
                         extra, n, token, &toklen, err);
    }
    free(aud);
    free(extra);
    if (!rc && toklen > SIGNALR_MAX_CLIENT_TOKEN)
        rc = sr__fail(err, SIGNALR_ETOOBIG,
                      "client token is %lu characters, the service accepts "
                      "at most %d: use fewer or shorter claims",
                      (unsigned long)toklen, SIGNALR_MAX_CLIENT_TOKEN);
    if (rc) {
        free(*url);
        free(*token);
        *url = *token = NULL;
    }
    return rc;
}
