/* request.c - the pure request builder: operation + params + clock ->
 * method, URL, headers (with the signed JWT) and body. */
#include "ops.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ===== building ===== */

/* A text named what (s NULL: absent) that is not one JSON array:
 * EINVAL, saying so, or that it nests deeper than the check goes. */
static signalr_err not_a_list(const char *what, const char *s, size_t n,
                              signalr_error *err)
{
    if (s && sr__json_too_deep(s, n))
        return sr__fail(err, SIGNALR_EINVAL, "%s nest more than %d arrays "
                        "and objects deep (the list itself is one)", what,
                        SR__JSON_MAX_DEPTH);
    return sr__fail(err, SIGNALR_EINVAL, "%s must be a JSON array", what);
}

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
    if ((row->flags & F_BODY) && p->arguments && !p->arguments_checked &&
        sr__check_utf8("arguments", p->arguments, p->arguments_len, err))
        return SIGNALR_EINVAL;
    if ((row->flags & F_BODY) && p->arguments && !p->arguments_checked &&
        !sr__json_is(p->arguments, p->arguments_len, '['))
        return not_a_list("arguments", p->arguments, p->arguments_len, err);
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
        return not_a_list("commands", p->commands, p->commands_len, err);
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

/* Append the literal lit (its length known: no strlen). */
#define ADDL(b, lit) sr__buf_add((b), (lit), sizeof(lit) - 1)

/* 1 when s[0..n) holds only characters signalr_url_encode leaves as they
 * are (letters, digits, "-._~": its unreserved set), so that its
 * escaped form is itself. */
static int url_plain(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
              ch == '_' || ch == '~'))
            return 0;
    }
    return 1;
}

/* sr__buf_add_escaped, copying text that has nothing to escape. */
static void add_escaped(sr__buf *b, const char *s, size_t n)
{
    if (url_plain(s, n))
        sr__buf_add(b, s, n);
    else
        sr__buf_add_escaped(b, s, n);
}

/* The hub name lower-cased (as sr__lower does) and escaped. */
static void add_hub(sr__buf *b, const char *hub)
{
    char low[SIGNALR_MAX_HUB];
    size_t n = strlen(hub), i;
    char *copy;

    if (n <= sizeof(low)) {
        /* the common case: validated names are at most this long */
        for (i = 0; i < n; i++)
            low[i] = (char)tolower((unsigned char)hub[i]);
        add_escaped(b, low, n);
        return;
    }
    copy = sr__strdup(hub);
    if (!copy) {
        b->oom = 1;
        return;
    }
    sr__lower(copy);
    add_escaped(b, copy, n);
    free(copy);
}

/* Expand the row's path template after the hub prefix into b. */
static void add_path(sr__buf *b, const signalr_client *c,
                     const sr__op_row *row, const char *tmpl,
                     const signalr_params *p)
{
    const char *s;

    if (!(row->flags & F_NOHUB)) {
        if (c->api_version)
            ADDL(b, "/api/hubs/");
        else
            ADDL(b, "/api/v1/hubs/");
        if (app_in_path(c, row)) {
            add_escaped(b, c->application, strlen(c->application));
            sr__buf_add(b, "_", 1);
        }
        add_hub(b, p->hub);
    }
    for (s = tmpl; *s;) {
        const char *v = NULL, *run;

        if (*s == '%' && s[1]) {
            switch (s[1]) {
            case 'u': v = p->user; break;
            case 'g': v = p->group; break;
            case 'c': v = p->connection; break;
            default: break;
            }
            if (v)
                add_escaped(b, v, strlen(v));
            s += 2;
            continue;
        }
        /* a run of literal characters up to the next directive */
        for (run = s; *s && !(*s == '%' && s[1]); s++)
            ;
        sr__buf_add(b, run, (size_t)(s - run));
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
        ADDL(b, "application=");
        add_escaped(b, c->application, strlen(c->application));
    }
    if (c->api_version && !(row->flags & F_NOVERSION)) {
        SEP();
        ADDL(b, "api-version=");
        add_escaped(b, c->api_version, strlen(c->api_version));
    }
    if (row->flags & F_EXCLUDED) {
        for (i = 0; i < p->excluded_count; i++) {
            SEP();
            ADDL(b, "excluded=");
            add_escaped(b, p->excluded[i], strlen(p->excluded[i]));
        }
    }
    if ((row->flags & F_REASON) && p->reason) {
        SEP();
        ADDL(b, "reason=");
        add_escaped(b, p->reason, strlen(p->reason));
    }
    if ((row->flags & F_TTL) && p->ttl != SIGNALR_TTL_NONE) {
        SEP();
        sr__buf_addf(b, "ttl=%ld", p->ttl);
    }
    if ((row->flags & F_TOKEN) && p->user) {
        SEP();
        ADDL(b, "userId=");
        add_escaped(b, p->user, strlen(p->user));
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
        ADDL(b, "filter=");
        add_escaped(b, p->filter, strlen(p->filter));
    }
    if ((row->flags & F_PAGE) && p->continuation_token) {
        SEP();
        ADDL(b, "continuationToken=");
        add_escaped(b, p->continuation_token, strlen(p->continuation_token));
    }
#undef SEP
}

static signalr_err add_body(signalr_request *r, const signalr_params *p,
                            signalr_error *err)
{
    static const char head[] = "{\"target\":\"", mid[] = "\",\"arguments\":";
    const char *args = p->arguments ? p->arguments : "[]";
    size_t tl = strlen(p->target), al = p->arguments ? p->arguments_len : 2;
    size_t i;

    for (i = 0; i < tl; i++) {
        unsigned char ch = (unsigned char)p->target[i];

        if (ch < 0x20 || ch == '"' || ch == '\\')
            break;
    }
    if (i == tl) {
        /* nothing in the target to escape (the common case): the body
         * in one allocation, as sr__buf_add_json_string would write it */
        size_t len = sizeof(head) - 1 + tl + sizeof(mid) - 1 + al + 1;
        char *d = malloc(len + 1);

        if (d) {
            memcpy(d, head, sizeof(head) - 1);
            memcpy(d + sizeof(head) - 1, p->target, tl);
            memcpy(d + sizeof(head) - 1 + tl, mid, sizeof(mid) - 1);
            memcpy(d + len - 1 - al, args, al);
            d[len - 1] = '}';
            d[len] = '\0';
            r->body_len = len;
        }
        r->body = d;
    } else {
        sr__buf b = {0};

        ADDL(&b, "{\"target\":");
        sr__buf_add_json_string(&b, p->target, tl);
        ADDL(&b, ",\"arguments\":");
        sr__buf_add(&b, args, al);
        sr__buf_add(&b, "}", 1);
        r->body = sr__buf_take(&b, &r->body_len);
    }
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
    sr__buf path = {0};
    char aud_buf[512], *aud, *aud_owned = NULL, *owned = NULL;
    const char *ab;
    signalr_err rc;
    size_t n, pl, bl, abl;

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
    /* one buffer: the path (n bytes, the audience's tail), then the query */
    add_path(&path, c, row, tmpl, p);
    n = path.len;
    add_query(&path, c, row, p);
    pl = path.len;
    r->path = sr__buf_take(&path, NULL);
    if (!r->path || !r->host) {
        signalr_request_clear(r);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    bl = strlen(c->base);
    r->url = malloc(bl + pl + 1);
    /* aud: the request URL of the service Endpoint, no port, no query */
    ab = signalr_connstr_audience_base(c->cs);
    abl = strlen(ab);
    aud = aud_buf;
    if (abl + n >= sizeof(aud_buf))
        aud = aud_owned = malloc(abl + n + 1);
    if (!r->url || !aud) {
        free(aud_owned);
        signalr_request_clear(r);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    memcpy(r->url, c->base, bl);
    memcpy(r->url + bl, r->path, pl + 1);
    memcpy(aud, ab, abl);
    memcpy(aud + abl, r->path, n);
    aud[abl + n] = '\0';
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
            rc = sr__bearer_for(c, aud, now, &bearer, &owned, err);
            if (!rc) {
                r->authorization = owned ? owned : sr__strdup(bearer);
                if (!r->authorization)
                    rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
            }
        }
    }
    free(aud_owned);
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
