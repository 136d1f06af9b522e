/* request.c - clients and the pure request builder: operation + params +
 * clock -> method, URL, headers (with the signed JWT) and body. */
#include "ops.h"

#include <ctype.h>
#include <openssl/crypto.h>
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
    char *product_info; /* Asrs-User-Agent */
    long lifetime;
    signalr_token_fn token_fn;
    void *token_ud;
    /* server endpoint, split once */
    char *host;
    int port, tls;
    char *base;         /* scheme://host[:port] used for requests */
    token_slot tokens[TOKEN_SLOTS];
    /* Entra ID: the temporary access key negotiate signs with */
    char *temp_kid, *temp_key;
    size_t temp_keylen;
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
    c->product_info = sr__strdup(o->product_info
                                     ? o->product_info
                                     : "lua-signalr/" SIGNALR_VERSION);
    c->lifetime = o->token_lifetime > 0 ? o->token_lifetime
                                        : DEFAULT_LIFETIME;
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
    /* generateToken: the user id is optional */
    if (!rc && ((row->flags & F_USER) || ((row->flags & F_TOKEN) && p->user)))
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
        sr__check_utf8("arguments", p->arguments, p->arguments_len, err))
        return SIGNALR_EINVAL;
    if ((row->flags & F_BODY) && p->arguments &&
        !sr__json_is(p->arguments, p->arguments_len, '['))
        return sr__fail(err, SIGNALR_EINVAL,
                        "arguments must be a JSON array");
    if ((row->flags & F_EXCLUDED) && p->excluded_count) {
        for (i = 0; i < p->excluded_count; i++) {
            const char *x = p->excluded[i];

            rc = signalr_validate_id("excluded connection id", x,
                                     x ? strlen(x) : 0, err);
            if (rc)
                return rc;
        }
    }
    /* a reason is any string; an empty one is sent as is */
    if ((row->flags & F_REASON) && p->reason && *p->reason) {
        rc = signalr_validate_id("reason", p->reason, strlen(p->reason),
                                 err);
        if (rc)
            return rc;
    }
    if ((row->flags & F_TTL) && p->ttl != SIGNALR_TTL_NONE &&
        (p->ttl < 0 || p->ttl > 2147483647L))
        return sr__fail(err, SIGNALR_EINVAL,
                        "ttl must be from 0 to 2147483647 seconds");
    /* swagger: minutesToExpire int32, minimum 1 */
    if ((row->flags & F_TOKEN) &&
        (p->minutes_to_expire < 0 || p->minutes_to_expire > 2147483647L))
        return sr__fail(err, SIGNALR_EINVAL,
                        "minutes_to_expire must be from 1 to 2147483647");
    /* swagger: top int32 1..2^31-1, maxpagesize 1..200 */
    if ((row->flags & F_PAGE) && (p->top < 0 || p->top > 2147483647L))
        return sr__fail(err, SIGNALR_EINVAL,
                        "top must be from 1 to 2147483647");
    if ((row->flags & F_PAGE) &&
        (p->max_page_size < 0 || p->max_page_size > 200))
        return sr__fail(err, SIGNALR_EINVAL,
                        "max_page_size must be from 1 to 200");
    if ((row->flags & F_PAGE) && p->continuation_token &&
        !*p->continuation_token)
        return sr__fail(err, SIGNALR_EINVAL, "continuation token is empty");
    if ((row->flags & F_EXEC) && p->commands &&
        sr__check_utf8("commands", p->commands, p->commands_len, err))
        return SIGNALR_EINVAL;
    if ((row->flags & F_EXEC) &&
        (!p->commands || !sr__json_is(p->commands, p->commands_len, '[')))
        return sr__fail(err, SIGNALR_EINVAL,
                        "commands must be a JSON array");
    if ((row->flags & F_EXEC) && p->filter) {
        rc = signalr_validate_id("filter", p->filter, strlen(p->filter),
                                 err);
        if (rc)
            return rc;
    }
    (void)c;
    return SIGNALR_OK;
}

/* EINVAL when a value the path template puts into a segment of its own
 * is "." or "..": a client normalising the path would send the request
 * to another route (to_user("..") would become a broadcast). */
static signalr_err check_segments(const char *tmpl, const signalr_params *p,
                                  signalr_error *err)
{
    const char *s;

    for (s = tmpl; *s; s++) {
        const char *v = NULL, *what = NULL;

        if (*s != '%' || !s[1])
            continue;
        switch (*++s) {
        case 'u': v = p->user; what = "user id"; break;
        case 'g': v = p->group; what = "group name"; break;
        case 'c': v = p->connection; what = "connection id"; break;
        default: break;
        }
        if (v && (!strcmp(v, ".") || !strcmp(v, "..")))
            return sr__fail(err, SIGNALR_EINVAL,
                            "%s \"%s\" is a dot segment: it would change "
                            "the request's path", what, v);
    }
    return SIGNALR_OK;
}

/* 1 when the application prefix goes into the hub path segment
 * ("<app>_<hub>", the service's hub identity) rather than the query: v1
 * has no `application` parameter, and neither have :generateToken and
 * :execute. */
static int app_in_path(const signalr_client *c, const sr__op_row *row)
{
    return c->application &&
           (!c->api_version || (row->flags & (F_TOKEN | F_EXEC)));
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
        if (app_in_path(c, row)) {
            sr__buf_add_escaped(b, c->application, strlen(c->application));
            sr__buf_add(b, "_", 1);
        }
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
    if (c->application && !(row->flags & F_NOHUB) && !app_in_path(c, row)) {
        SEP();
        sr__buf_adds(b, "application=");
        sr__buf_add_escaped(b, c->application, strlen(c->application));
    }
    if (c->api_version && !(row->flags & F_NOVERSION)) {
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
    if ((row->flags & F_TOKEN) && p->user) {
        SEP();
        sr__buf_adds(b, "userId=");
        sr__buf_add_escaped(b, p->user, strlen(p->user));
    }
    if ((row->flags & F_TOKEN) && p->minutes_to_expire > 0) {
        SEP();
        sr__buf_addf(b, "minutesToExpire=%ld", p->minutes_to_expire);
    }
    if ((row->flags & F_PAGE) && p->top > 0) {
        SEP();
        sr__buf_addf(b, "top=%ld", p->top);
    }
    if ((row->flags & F_PAGE) && p->max_page_size > 0) {
        SEP();
        sr__buf_addf(b, "maxpagesize=%ld", p->max_page_size);
    }
    if ((row->flags & F_EXEC) && p->filter) {
        SEP();
        sr__buf_adds(b, "filter=");
        sr__buf_add_escaped(b, p->filter, strlen(p->filter));
    }
    if ((row->flags & F_PAGE) && p->continuation_token) {
        SEP();
        sr__buf_adds(b, "continuationToken=");
        sr__buf_add_escaped(b, p->continuation_token,
                            strlen(p->continuation_token));
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

/* A body given as ready JSON text (:execute's commands). */
static signalr_err add_raw_body(signalr_request *r, const char *json,
                                size_t len, signalr_error *err)
{
    if (len > SIGNALR_MAX_BODY)
        return sr__fail(err, SIGNALR_ETOOBIG,
                        "message body is %lu bytes, the service accepts at "
                        "most %d (1 MB)", (unsigned long)len,
                        SIGNALR_MAX_BODY);
    r->body = sr__strndup(json, len);
    if (!r->body)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    r->body_len = len;
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
    n += 17 + strlen(r->product_info) + 2;             /* Asrs-User-Agent */
    n += r->content_type ? 14 + strlen(r->content_type) + 2 : 0;
    n += 16 + 20 + 2 + 2;                              /* Content-Length */
    n += r->headers ? strlen(r->headers) : 0;
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
                        "%s needs api_version %s or later "
                        "(the v1 REST API has no such route)",
                        row->name, row->since ? row->since : "2022-06-01");
    if (row->since && strncmp(c->api_version, row->since, 10) < 0)
        return sr__fail(err, SIGNALR_EUNSUPPORTED,
                        "%s needs api_version %s or later (the client "
                        "uses %s)", row->name, row->since, c->api_version);
    rc = check_params(c, row, p, err);
    if (!rc)
        rc = check_segments(tmpl, p, err);
    if (rc)
        return rc;

    r->op = op;
    r->method = method;
    r->idempotent = (row->flags & F_IDEMPOTENT) != 0;
    r->user_agent = c->user_agent;
    r->product_info = c->product_info;
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
    if (row->flags & F_EXEC)
        rc = add_raw_body(r, p->commands, p->commands_len, err);
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
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

/* ===== requests that are not SignalR operations ===== */

static int is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

signalr_err signalr_request_http(const char *method, const char *url,
                                 const char *const *headers, size_t nheaders,
                                 const char *body, size_t body_len,
                                 const char *content_type,
                                 signalr_request *r, signalr_error *err)
{
    static const char *const METHODS[] = {"GET", "POST", "PUT", "DELETE",
                                          "HEAD"};
    const char *h, *p, *end;
    sr__buf b = {0};
    size_t i, hn;
    long port = -1;
    int literal = 0; /* [IPv6] */

    memset(r, 0, sizeof(*r));
    sr__ok(err);
    for (i = 0; method && i < sizeof(METHODS) / sizeof(*METHODS); i++)
        if (!strcmp(method, METHODS[i]))
            r->method = METHODS[i];
    if (!r->method)
        return sr__fail(err, SIGNALR_EINVAL,
                        "method must be GET, POST, PUT, DELETE or HEAD");
    if (!url)
        return sr__fail(err, SIGNALR_EINVAL, "url is missing");
    r->tls = !strncmp(url, "https://", 8);
    if (!r->tls && strncmp(url, "http://", 7))
        return sr__fail(err, SIGNALR_EINVAL,
                        "url must be an absolute http or https URL");
    h = url + (r->tls ? 8 : 7);
    for (p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
            *p == '#')
            return sr__fail(err, SIGNALR_EINVAL,
                            "url must not contain spaces, control bytes, "
                            "non-ASCII bytes or a fragment");
    end = h + strcspn(h, "/?");
    if (memchr(h, '@', (size_t)(end - h)))
        return sr__fail(err, SIGNALR_EINVAL, "url must not carry user info");
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));

        if (!close || close == h + 1)
            return sr__fail(err, SIGNALR_EINVAL, "url has a malformed host");
        hn = (size_t)(close - h - 1);
        p = close + 1;
        h++;
        literal = 1;
    } else {
        p = memchr(h, ':', (size_t)(end - h));
        if (!p)
            p = end;
        hn = (size_t)(p - h);
    }
    if (!hn)
        return sr__fail(err, SIGNALR_EINVAL, "url has no host");
    /* RFC 3986: an IP literal of hex digits, ':' and '.', or a reg-name
     * of unreserved characters (names, IPv4 addresses) */
    for (i = 0; i < hn; i++) {
        int ch = (unsigned char)h[i];

        if (literal ? !(isxdigit(ch) || ch == ':' || ch == '.')
                         : !(isalnum(ch) || ch == '-' || ch == '.' ||
                             ch == '_' || ch == '~'))
            return sr__fail(err, SIGNALR_EINVAL,
                            "url has a malformed host");
    }
    if (p < end) {
        if (*p != ':' || p + 1 == end)
            return sr__fail(err, SIGNALR_EINVAL, "url has a malformed port");
        for (port = 0, p++; p < end && port <= 65535; p++) {
            if (!isdigit((unsigned char)*p))
                return sr__fail(err, SIGNALR_EINVAL,
                                "url has a malformed port");
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return sr__fail(err, SIGNALR_EINVAL,
                            "url port must be 1-65535");
    }
    for (i = 0; i < nheaders; i++) {
        const char *name = headers[2 * i], *value = headers[2 * i + 1];

        if (!name || !*name || !value)
            return sr__fail(err, SIGNALR_EINVAL, "header %lu is incomplete",
                            (unsigned long)i + 1);
        for (p = name; *p; p++)
            if (!is_tchar((unsigned char)*p))
                return sr__fail(err, SIGNALR_EINVAL,
                                "header name '%.40s' is not an HTTP token",
                                name);
        for (p = value; *p; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                return sr__fail(err, SIGNALR_EINVAL,
                                "header '%.40s' has a control character in "
                                "its value", name);
    }
    if (content_type && strpbrk(content_type, "\r\n"))
        return sr__fail(err, SIGNALR_EINVAL,
                        "content type contains a line break");
    r->op = SIGNALR_OP_MAX;
    r->idempotent = 1;
    r->port = port > 0 ? (int)port : (r->tls ? 443 : 80);
    r->user_agent = "lua-signalr/" SIGNALR_VERSION;
    r->host = sr__strndup(h, hn);
    r->url = sr__strdup(url);
    r->path = sr__strdup(*end ? end : "/");
    if (r->path && r->path[0] == '?') { /* "http://h?x" asks for "/?x" */
        sr__buf_adds(&b, "/");
        sr__buf_adds(&b, r->path);
        free(r->path);
        r->path = sr__buf_take(&b, NULL);
    }
    for (i = 0; i < nheaders; i++) {
        sr__buf_adds(&b, headers[2 * i]);
        sr__buf_add(&b, ": ", 2);
        sr__buf_adds(&b, headers[2 * i + 1]);
        sr__buf_add(&b, "\r\n", 2);
    }
    if (nheaders)
        r->headers = sr__buf_take(&b, NULL);
    if (body) {
        r->body = sr__strndup(body, body_len);
        r->body_len = body_len;
        r->content_type = content_type ? content_type
                                       : "application/octet-stream";
    }
    if (!r->host || !r->url || !r->path || (nheaders && !r->headers) ||
        (body && !r->body)) {
        sr__buf_free(&b);
        signalr_request_clear(r);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    return SIGNALR_OK;
}

/* ===== negotiate ===== */

/* Claim types the service reserves (Azure/azure-signalr
 * ClaimsUtility.BuildJwtClaims, SystemClaims): a custom claim of one of
 * these types is sent as "asrs.u.<type>", so the service reads it as the
 * user's claim instead of its own. */
static const char *const SYSTEM_CLAIMS[] = {
    "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash",
    "jti", "nonce"
};
/* Set by negotiate itself when a user id is given. */
static const char *const USER_CLAIMS[] = {"nameid", "asrs.s.uid"};

static int key_is(const char *k, size_t kl, const char *name)
{
    return kl == strlen(name) && !memcmp(k, name, kl);
}

/* Append the custom claims (a JSON object's text) to b as members, each
 * preceded by a comma: system claim types renamed to asrs.u.<type>; of
 * all "sub" values (repeated members, or the elements of an array value)
 * the first stays "sub" and the others become "asrs.u.sub" (a string, or
 * an array when several), as the service SDK does. */
static signalr_err add_custom_claims(sr__buf *b, const char *obj, size_t len,
                                     int has_user, signalr_error *err)
{
    sr__buf subs = {0};
    size_t pos = 0, kl, vl, i, nsub = 0;
    const char *k, *v;

    while (sr__json_next(obj, len, &pos, &k, &kl, &v, &vl)) {
        int renamed = 0;

        for (i = 0; has_user && i < 2; i++)
            if (key_is(k, kl, USER_CLAIMS[i])) {
                sr__buf_free(&subs);
                return sr__fail(err, SIGNALR_EINVAL,
                                "claim '%s' is set by negotiate from "
                                "user_id", USER_CLAIMS[i]);
            }
        if (key_is(k, kl, "sub")) {
            size_t ep = 0, el = vl;
            const char *e = v;
            int more = v[0] == '[' ? sr__json_next(v, vl, &ep, NULL, NULL,
                                                   &e, &el)
                                   : 1;

            while (more) {
                if (nsub++ == 0) {
                    sr__buf_adds(b, ",\"sub\":");
                    sr__buf_add(b, e, el);
                } else {
                    sr__buf_add(&subs, ",", 1);
                    sr__buf_add(&subs, e, el);
                }
                more = v[0] == '[' &&
                       sr__json_next(v, vl, &ep, NULL, NULL, &e, &el);
            }
            continue;
        }
        for (i = 0; i < sizeof(SYSTEM_CLAIMS) / sizeof(*SYSTEM_CLAIMS); i++)
            if (key_is(k, kl, SYSTEM_CLAIMS[i]))
                renamed = 1;
        sr__buf_adds(b, renamed ? ",\"asrs.u." : ",\"");
        sr__buf_add(b, k, kl);
        sr__buf_adds(b, "\":");
        sr__buf_add(b, v, vl);
    }
    if (nsub == 2) {
        sr__buf_adds(b, ",\"asrs.u.sub\":");
        sr__buf_add(b, subs.p + 1, subs.len - 1);
    } else if (nsub > 2) {
        sr__buf_adds(b, ",\"asrs.u.sub\":[");
        sr__buf_add(b, subs.p + 1, subs.len - 1);
        sr__buf_add(b, "]", 1);
    }
    if (subs.oom)
        b->oom = 1;
    sr__buf_free(&subs);
    return SIGNALR_OK;
}

signalr_err signalr_client_negotiate(signalr_client *c, const char *hub,
                                     const char *user_id,
                                     const char *extra_claims, long lifetime,
                                     time_t now, char **url, char **token,
                                     signalr_error *err)
{
    sr__buf b = {0}, claims = {0};
    char *lhub, *aud, *extra;
    size_t n, toklen = 0;
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
    if (!signalr_connstr_has_key(c->cs) && !c->temp_key)
        return sr__fail(err, SIGNALR_EINVAL,
                        "negotiate needs an AccessKey to sign client tokens "
                        "(AuthType=%s has none: fetch a temporary key with "
                        "the ACCESS_KEY operation and "
                        "signalr_client_set_access_key())",
                        signalr_connstr_auth_type(c->cs));
    if (extra_claims) {
        size_t el = strlen(extra_claims);

        if (!sr__json_is(extra_claims, el, '{'))
            return sr__fail(err, SIGNALR_EINVAL,
                            "claims must be a JSON object");
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
    rc = SIGNALR_OK;
    if (extra_claims)
        rc = add_custom_claims(&claims, extra_claims, strlen(extra_claims),
                               user_id != NULL, err);
    if (rc) {
        sr__buf_free(&claims);
        free(aud);
        free(*url);
        *url = NULL;
        return rc;
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

signalr_err signalr_client_server_token(signalr_client *c, const char *hub,
                                        const char *server_id, long lifetime,
                                        time_t now, char **url, char **token,
                                        signalr_error *err)
{
    sr__buf b = {0};
    char *path, *aud, *extra;
    size_t n, pn, toklen = 0;
    signalr_err rc;

    sr__ok(err);
    if (!url)
        return sr__fail(err, SIGNALR_EINVAL, "missing output");
    *url = NULL;
    if (token)
        *token = NULL;
    if (!hub)
        return sr__fail(err, SIGNALR_EINVAL, "hub name is missing");
    rc = signalr_validate_hub(hub, strlen(hub), err);
    if (!rc && token && server_id)
        rc = signalr_validate_id("server id", server_id, strlen(server_id),
                                 err);
    if (rc)
        return rc;
    if (token && !signalr_connstr_has_key(c->cs) && !c->temp_key)
        return sr__fail(err, SIGNALR_EINVAL, "a server token is signed with "
                        "an AccessKey; with Microsoft Entra ID the bearer "
                        "is the identity's own token");
    sr__buf_adds(&b, "/server/?hub=");
    if (c->application) {
        sr__buf_adds(&b, c->application);
        sr__buf_add(&b, "_", 1);
    }
    n = b.len;
    sr__buf_adds(&b, hub);
    if (b.p)
        lower(b.p + n);
    path = sr__buf_take(&b, &pn);
    if (!path)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    sr__buf_adds(&b, signalr_connstr_server_endpoint(c->cs));
    sr__buf_add(&b, path, pn);
    *url = sr__buf_take(&b, NULL);
    if (!*url) {
        free(path);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    if (!token) {
        free(path);
        return SIGNALR_OK;
    }
    /* aud: the Endpoint's scheme and host (never ServerEndpoint's, no
     * port), as the service SDK's token provider builds it */
    sr__buf_adds(&b, signalr_connstr_audience_base(c->cs));
    sr__buf_add(&b, path, pn);
    free(path);
    aud = sr__buf_take(&b, NULL);
    sr__buf_addf(&b, "\"nbf\":%ld", (long)now);
    if (server_id) {
        sr__buf_adds(&b, ",\"nameid\":");
        sr__buf_add_json_string(&b, server_id, strlen(server_id));
    }
    extra = sr__buf_take(&b, &n);
    if (!aud || !extra)
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    else
        rc = sign_claims(c, aud, now, lifetime > 0 ? lifetime
                                                   : DEFAULT_LIFETIME,
                         extra, n, token, &toklen, err);
    free(aud);
    free(extra);
    if (rc) {
        free(*url);
        *url = NULL;
    }
    return rc;
}
