/* signalr_core.c - the private `signalr.core` module: marshals Lua values to
 * the C core and back.  No policy lives here: defaults, option checking and
 * messages for users are the Lua layer's (lua/signalr/).
 *
 * Conventions: a wrong argument type raises (luaL_check*); bad data and
 * failures return nil, message, details where details is a table with
 * `code` (e.g. "EINVAL") and, for HTTP replies, `status`, `service_code`
 * and `body`.  C memory is never live across a call that can raise: built
 * requests sit in a userdata box whose __gc releases them. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLIENT_MT "signalr.client"
#define BOX_MT "signalr.box"
#define POLLSET_MT "signalr.pollset"

typedef struct {
    signalr_client *c;
    signalr_http *h;             /* created on the first call */
    signalr_multi *m;            /* created on the first submit */
    size_t queue_size;
    long max_connections;
    signalr_http_options http;
    signalr_retry_policy retry;
    char *ca_file;
} lclient;

/* Holds C allocations while results are pushed (a push may raise). */
typedef struct {
    signalr_request req;
    char *a, *b;
} box;

/* ===== helpers ===== */

static void push_details(lua_State *L, const signalr_error *e)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, signalr_err_name(e->code));
    lua_setfield(L, -2, "code");
    if (e->status) {
        lua_pushinteger(L, e->status);
        lua_setfield(L, -2, "status");
    }
    if (e->service_code[0]) {
        lua_pushstring(L, e->service_code);
        lua_setfield(L, -2, "service_code");
    }
    /* whether a failed request may have reached the service */
    if (e->code == SIGNALR_ECONNECT || e->code == SIGNALR_ETIMEDOUT ||
        e->code == SIGNALR_EHTTP || e->code == SIGNALR_ESTATUS ||
        e->code == SIGNALR_ECANCELED) {
        lua_pushboolean(L, e->sent);
        lua_setfield(L, -2, "sent");
    }
}

/* nil, message, details (cf. luv_error) */
static int push_fail(lua_State *L, const signalr_error *e)
{
    lua_pushnil(L);
    lua_pushstring(L, e->msg[0] ? e->msg : signalr_strerror(e->code));
    push_details(L, e);
    return 3;
}

int sr_lua_push_fail(lua_State *L, const signalr_error *e)
{
    return push_fail(L, e);
}

void sr_lua_push_details(lua_State *L, const signalr_error *e)
{
    push_details(L, e);
}

static int fail_msg(lua_State *L, signalr_err code, const char *msg)
{
    signalr_error e;

    memset(&e, 0, sizeof(e));
    e.code = code;
    strncpy(e.msg, msg, sizeof(e.msg) - 1);
    return push_fail(L, &e);
}

static int box_gc(lua_State *L)
{
    box *b = luaL_checkudata(L, 1, BOX_MT);

    signalr_request_clear(&b->req);
    signalr_free(b->a);
    signalr_free(b->b);
    b->a = b->b = NULL;
    return 0;
}

static box *new_box(lua_State *L)
{
    box *b = lua_newuserdatauv(L, sizeof(box), 0);

    memset(b, 0, sizeof(*b));
    luaL_setmetatable(L, BOX_MT);
    return b;
}

static lclient *check_client(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);

    if (!lc->c)
        luaL_error(L, "signalr client is closed");
    return lc;
}

static signalr_op check_op(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    signalr_op op;

    if (signalr_op_find(name, &op))
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown operation '%s'",
                                              name));
    return op;
}

/* Optional string field; raises on a wrong type; *nul set on a NUL byte. */
static const char *opt_field(lua_State *L, int t, const char *k,
                             size_t *len, const char **nul)
{
    const char *s;
    size_t n;

    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (len)
            *len = 0;
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "params.%s must be a string", k);
    s = lua_tolstring(L, -1, &n);
    lua_pop(L, 1); /* still referenced by the params table */
    if (strlen(s) != n && !*nul)
        *nul = k;
    if (len)
        *len = n;
    return s;
}

/* An optional whole number field (0 when absent); values that are not
 * whole or out of range become -1, which the core rejects as EINVAL. */
static long opt_long(lua_State *L, int t, const char *k)
{
    long v = 0;

    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        lua_Number n = luaL_checknumber(L, -1);

        v = n >= 1 && n <= 2147483647.0 && n == (lua_Number)(long)n
                ? (long)n
                : -1;
    }
    lua_pop(L, 1);
    return v;
}

/* Read a params table at index t into p.  Returns NULL or the name of a
 * field holding a NUL byte (the caller answers EINVAL). */
static const char *read_params(lua_State *L, int t, signalr_params *p)
{
    const char *nul = NULL;

    luaL_checktype(L, t, LUA_TTABLE);
    memset(p, 0, sizeof(*p));
    p->hub = opt_field(L, t, "hub", NULL, &nul);
    p->user = opt_field(L, t, "user", NULL, &nul);
    p->group = opt_field(L, t, "group", NULL, &nul);
    p->connection = opt_field(L, t, "connection", NULL, &nul);
    p->target = opt_field(L, t, "target", NULL, &nul);
    p->reason = opt_field(L, t, "reason", NULL, &nul);
    p->bearer = opt_field(L, t, "bearer", NULL, &nul);
    p->arguments = opt_field(L, t, "arguments", &p->arguments_len, &nul);
    p->continuation_token = opt_field(L, t, "continuation_token", NULL, &nul);
    p->filter = opt_field(L, t, "filter", NULL, &nul);
    p->commands = opt_field(L, t, "commands", &p->commands_len, &nul);
    if (p->commands && nul && !strcmp(nul, "commands"))
        nul = NULL; /* JSON text is length-delimited */
    p->minutes_to_expire = opt_long(L, t, "minutes_to_expire");
    p->top = opt_long(L, t, "top");
    p->max_page_size = opt_long(L, t, "max_page_size");
    if (p->arguments && nul && !strcmp(nul, "arguments"))
        nul = NULL; /* JSON text is length-delimited */
    lua_getfield(L, t, "ttl");
    if (lua_isnil(L, -1)) {
        p->ttl = SIGNALR_TTL_NONE;
    } else {
        lua_Number n = luaL_checknumber(L, -1);

        /* out-of-range values become an invalid ttl for the core */
        p->ttl = n >= -1e10 && n <= 1e10 && n == (lua_Number)(long)n
                     ? (long)n
                     : -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "excluded");
    if (!lua_isnil(L, -1)) {
        size_t i, n;
        const char **ids;

        luaL_checktype(L, -1, LUA_TTABLE);
        n = lua_rawlen(L, -1);
        /* the pointer array lives in a userdata: no leak if we raise */
        ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*ids), 0);
        for (i = 0; i < n; i++) {
            size_t len;

            lua_rawgeti(L, -2, (int)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "params.excluded[%d] must be a string",
                           (int)i + 1);
            ids[i] = lua_tolstring(L, -1, &len);
            if (strlen(ids[i]) != len && !nul)
                nul = "excluded";
            lua_pop(L, 1);
        }
        p->excluded = ids;
        p->excluded_count = n;
        /* leave the array on the stack until the C function returns */
        lua_remove(L, -2);
        return nul;
    }
    lua_pop(L, 1);
    return nul;
}

static int nul_fail(lua_State *L, const char *field)
{
    char msg[96];

    strcpy(msg, field);
    strcat(msg, " contains a NUL byte");
    return fail_msg(L, SIGNALR_EINVAL, msg);
}

/* ===== client ===== */

static long opt_ms(lua_State *L, int t, const char *k, long dflt)
{
    long v = dflt;

    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1))
        v = (long)(luaL_checknumber(L, -1) * 1000.0);
    lua_pop(L, 1);
    return v;
}

/* core.client(connection_string, opts) -> client | nil, msg, details
 * opts (checked by the Lua layer): api_version, application, user_agent,
 * token_lifetime (s), timeout, connect_timeout, retry_delay,
 * max_retry_delay (s), retries, verify_tls, ca_file. */
static int l_client(lua_State *L)
{
    size_t len;
    const char *cs = luaL_checklstring(L, 1, &len);
    signalr_client_options o;
    signalr_error e;
    lclient *lc;
    const char *nul = NULL;

    memset(&o, 0, sizeof(o));
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        o.api_version = opt_field(L, 2, "api_version", NULL, &nul);
        o.application = opt_field(L, 2, "application", NULL, &nul);
        o.user_agent = opt_field(L, 2, "user_agent", NULL, &nul);
        o.product_info = opt_field(L, 2, "product_info", NULL, &nul);
        lua_getfield(L, 2, "token_lifetime");
        o.token_lifetime = (long)luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
    }
    if (nul)
        return nul_fail(L, nul);
    lc = lua_newuserdatauv(L, sizeof(*lc), 0);
    memset(lc, 0, sizeof(*lc));
    luaL_setmetatable(L, CLIENT_MT);
    lc->http.verify_tls = 1;
    lc->http.timeout_ms = 10000;
    lc->retry.max_retries = 0;
    lc->retry.base_delay_ms = 500;
    lc->retry.max_delay_ms = 10000;
    if (lua_istable(L, 2)) {
        const char *ca;

        lc->http.timeout_ms = opt_ms(L, 2, "timeout", lc->http.timeout_ms);
        lc->http.connect_timeout_ms = opt_ms(L, 2, "connect_timeout", 0);
        lc->retry.base_delay_ms = opt_ms(L, 2, "retry_delay",
                                         lc->retry.base_delay_ms);
        lc->retry.max_delay_ms = opt_ms(L, 2, "max_retry_delay",
                                        lc->retry.max_delay_ms);
        lua_getfield(L, 2, "retries");
        lc->retry.max_retries = (int)luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
        lua_getfield(L, 2, "queue_size");
        lc->queue_size = (size_t)luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
        lua_getfield(L, 2, "max_connections");
        lc->max_connections = (long)luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
        lua_getfield(L, 2, "verify_tls");
        if (!lua_isnil(L, -1))
            lc->http.verify_tls = lua_toboolean(L, -1);
        lua_pop(L, 1);
        ca = opt_field(L, 2, "ca_file", NULL, &nul);
        if (nul) /* a NUL would silently cut the path short */
            return nul_fail(L, nul);
        if (ca) {
            size_t n = strlen(ca);

            lc->ca_file = malloc(n + 1);
            if (!lc->ca_file)
                return luaL_error(L, "out of memory");
            memcpy(lc->ca_file, ca, n + 1);
            lc->http.ca_file = lc->ca_file;
        }
    }
    if (signalr_client_new(cs, len, &o, &lc->c, &e))
        return push_fail(L, &e);
    return 1;
}

static int l_client_close(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);

    signalr_multi_free(lc->m); /* borrows the client: first */
    signalr_client_free(lc->c);
    signalr_http_free(lc->h);
    lc->m = NULL;
    free(lc->ca_file);
    lc->c = NULL;
    lc->h = NULL;
    lc->ca_file = NULL;
    return 0;
}

static int l_client_tostring(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);

    /* never the key */
    if (!lc->c)
        lua_pushliteral(L, "signalr.client (closed)");
    else
        lua_pushfstring(L, "signalr.client (%s)",
                        signalr_connstr_endpoint(signalr_client_connstr(
                            lc->c)));
    return 1;
}

/* client:info() -> table of the parsed connection string and settings */
static int l_client_info(lua_State *L)
{
    lclient *lc = check_client(L);
    const signalr_connstr *cs = signalr_client_connstr(lc->c);

    lua_createtable(L, 0, 8);
    lua_pushstring(L, signalr_connstr_endpoint(cs));
    lua_setfield(L, -2, "endpoint");
    lua_pushstring(L, signalr_connstr_client_endpoint(cs));
    lua_setfield(L, -2, "client_endpoint");
    lua_pushstring(L, signalr_connstr_server_endpoint(cs));
    lua_setfield(L, -2, "server_endpoint");
    lua_pushstring(L, signalr_connstr_audience_base(cs));
    lua_setfield(L, -2, "audience_base");
    lua_pushstring(L, signalr_connstr_version(cs));
    lua_setfield(L, -2, "version");
    lua_pushstring(L, signalr_connstr_auth_type(cs));
    lua_setfield(L, -2, "auth_type");
    lua_pushboolean(L, signalr_connstr_has_key(cs));
    lua_setfield(L, -2, "has_key");
    lua_pushboolean(L, signalr_client_is_v1(lc->c));
    lua_setfield(L, -2, "v1");
    lua_pushstring(L, signalr_connstr_client_id(cs)); /* nil when absent */
    lua_setfield(L, -2, "client_id");
    lua_pushstring(L, signalr_connstr_tenant_id(cs));
    lua_setfield(L, -2, "tenant_id");
    return 1;
}

/* client:call(op, params) -> true | false | nil, msg, details
 * Blocking: builds, sends with libcurl, reads, retries per the policy. */
static int l_client_call(lua_State *L)
{
    lclient *lc = check_client(L);
    signalr_op op = check_op(L, 2);
    signalr_params p;
    signalr_error e;
    const char *nul = read_params(L, 3, &p);
    int value = 0;

    if (nul)
        return nul_fail(L, nul);
    if (!lc->h && signalr_http_new(&lc->h, &e))
        return push_fail(L, &e);
    if (signalr_op_returns_data(op)) {
        box *b = new_box(L); /* owns the body: freed even if we raise */
        size_t n;

        if (signalr_call_data(lc->c, lc->h, op, &p, &lc->http, &lc->retry,
                              &value, &b->a, &n, &e))
            return push_fail(L, &e);
        lua_pushlstring(L, b->a ? b->a : "", b->a ? n : 0);
        return 1;
    }
    if (signalr_call(lc->c, lc->h, op, &p, &lc->http, &lc->retry, &value,
                     &e))
        return push_fail(L, &e);
    lua_pushboolean(L, value);
    return 1;
}

/* ===== asynchronous mode ===== */

/* client:submit(op, params) -> id | nil, msg, details */
static int l_client_submit(lua_State *L)
{
    lclient *lc = check_client(L);
    signalr_op op = check_op(L, 2);
    signalr_params p;
    signalr_error e;
    unsigned long id;
    const char *nul = read_params(L, 3, &p);

    if (nul)
        return nul_fail(L, nul);
    if (!lc->m && signalr_multi_new(lc->c, &lc->http, &lc->retry,
                                    lc->queue_size, lc->max_connections,
                                    &lc->m, &e))
        return push_fail(L, &e);
    if (signalr_multi_submit(lc->m, op, &p, &id, &e))
        return push_fail(L, &e);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* client:poll(timeout_s) -> array of { id, result | nil, error, details } */
static int l_client_poll(lua_State *L)
{
    lclient *lc = check_client(L);
    long ms = (long)(luaL_optnumber(L, 2, 0) * 1000.0);
    signalr_outcome o;
    signalr_error e;
    int n = 0;

    lua_newtable(L);
    if (!lc->m)
        return 1;
    if (signalr_multi_step(lc->m, ms, &e))
        return push_fail(L, &e);
    /* each outcome's table exists before the outcome is popped; only an
     * out-of-memory error while filling it could lose one */
    while (lua_checkstack(L, 4)) {
        lua_createtable(L, 0, 4);
        if (!signalr_multi_next(lc->m, &o)) {
            lua_pop(L, 1);
            break;
        }
        lua_pushinteger(L, (lua_Integer)o.id);
        lua_setfield(L, -2, "id");
        if (o.op == SIGNALR_OP_MAX && o.rc == SIGNALR_OK) {
            /* a fetch: its status and body (the table exists already, so
             * only an out-of-memory error here could lose the body) */
            lua_pushinteger(L, o.status);
            lua_setfield(L, -2, "status");
            lua_pushlstring(L, o.body ? o.body : "", o.body_len);
            signalr_free(o.body);
            lua_setfield(L, -2, "body");
        } else if (o.rc == SIGNALR_OK) {
            lua_pushboolean(L, o.value);
            lua_setfield(L, -2, "result");
        } else {
            lua_pushstring(L, o.err.msg[0] ? o.err.msg : signalr_strerror(o.rc));
            lua_setfield(L, -2, "error");
            push_details(L, &o.err);
            lua_setfield(L, -2, "details");
        }
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

static int l_client_pending(lua_State *L)
{
    lclient *lc = check_client(L);

    lua_pushinteger(L, lc->m ? (lua_Integer)signalr_multi_pending(lc->m) : 0);
    return 1;
}

static int l_client_cancel(lua_State *L)
{
    lclient *lc = check_client(L);

    if (lc->m)
        signalr_multi_cancel(lc->m);
    return 0;
}

/* client:timeout() -> seconds until poll is due, or nil for no timer */
static int l_client_timeout(lua_State *L)
{
    lclient *lc = check_client(L);
    long t = lc->m ? signalr_multi_timeout(lc->m) : -1;

    if (t < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, t / 1000.0);
    return 1;
}

/* client:fds() -> array of { fd = n, read = bool, write = bool }: every
 * descriptor libcurl watches, however many */
static int l_client_fds(lua_State *L)
{
    lclient *lc = check_client(L);
    int n = lc->m ? signalr_multi_fds(lc->m, NULL, NULL, 0) : 0;
    /* the arrays live in a userdata: no leak if a push raises */
    int *fds = lua_newuserdatauv(L, (size_t)(n ? 2 * n : 1) * sizeof(int), 0);
    int *ev = fds + n;

    if (n)
        n = signalr_multi_fds(lc->m, fds, ev, n);
    sr_lua_push_fds(L, fds, ev, n);
    return 1;
}

void sr_lua_push_fds(lua_State *L, const int *fds, const int *ev, int n)
{
    int i;

    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, fds[i]);
        lua_setfield(L, -2, "fd");
        lua_pushboolean(L, ev[i] & 1);
        lua_setfield(L, -2, "read");
        lua_pushboolean(L, (ev[i] & 2) != 0);
        lua_setfield(L, -2, "write");
        lua_rawseti(L, -2, i + 1);
    }
}

/* client:pollfd() -> the client's one pollable descriptor (epoll), or
 * nil where there is none; creates the multi handle when needed */
static int l_client_pollfd(lua_State *L)
{
    lclient *lc = check_client(L);
    signalr_error e;

    if (!lc->m && signalr_multi_new(lc->c, &lc->http, &lc->retry,
                                    lc->queue_size, lc->max_connections,
                                    &lc->m, &e))
        return push_fail(L, &e);
    if (signalr_multi_pollfd(lc->m) < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, signalr_multi_pollfd(lc->m));
    return 1;
}

/* Push built request b->req as a table for transports written in Lua
 * (nginx cosockets), then release it.  Returns 1. */
static int push_request(lua_State *L, box *b)
{
    lua_createtable(L, 0, 10);
    lua_pushstring(L, b->req.method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, b->req.url);
    lua_setfield(L, -2, "url");
    lua_pushstring(L, b->req.host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, b->req.port);
    lua_setfield(L, -2, "port");
    lua_pushboolean(L, b->req.tls);
    lua_setfield(L, -2, "tls");
    lua_pushstring(L, b->req.path);
    lua_setfield(L, -2, "path");
    lua_pushboolean(L, b->req.idempotent);
    lua_setfield(L, -2, "idempotent");
    if (b->req.body) {
        lua_pushlstring(L, b->req.body, b->req.body_len);
        lua_setfield(L, -2, "body");
    }
    lua_createtable(L, 0, 3);
    if (b->req.authorization) {
        lua_pushstring(L, b->req.authorization);
        lua_setfield(L, -2, "Authorization");
    }
    lua_pushstring(L, b->req.user_agent);
    lua_setfield(L, -2, "User-Agent");
    if (b->req.product_info) {
        lua_pushstring(L, b->req.product_info);
        lua_setfield(L, -2, "Asrs-User-Agent");
    }
    if (b->req.content_type) {
        lua_pushstring(L, b->req.content_type);
        lua_setfield(L, -2, "Content-Type");
    }
    lua_setfield(L, -2, "headers");
    if (b->req.headers) { /* identity requests: further lines, as is */
        lua_pushstring(L, b->req.headers);
        lua_setfield(L, -2, "extra_headers");
    }
    signalr_request_clear(&b->req);
    return 1;
}

/* Build an identity request from (method, url, headers, body,
 * content_type) at index i.. into b->req; headers is a table of
 * name = value strings.  Returns 0, or pushes nil, msg, details and
 * returns 3. */
static int build_http(lua_State *L, int i, box *b)
{
    const char *method = luaL_checkstring(L, i);
    size_t ul, bl = 0;
    const char *url = luaL_checklstring(L, i + 1, &ul);
    const char *body = luaL_optlstring(L, i + 3, NULL, &bl);
    const char *ctype = luaL_optstring(L, i + 4, NULL);
    const char **pairs = NULL;
    size_t n = 0;
    signalr_error e;

    if (strlen(url) != ul)
        return nul_fail(L, "url");
    if (!lua_isnoneornil(L, i + 2)) {
        luaL_checktype(L, i + 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, i + 2)) {
            n++;
            lua_pop(L, 1);
        }
        /* pointers live in a userdata below the results: no leak on raise */
        pairs = lua_newuserdatauv(L, (n ? 2 * n : 1) * sizeof(*pairs), 0);
        n = 0;
        lua_pushnil(L);
        while (lua_next(L, i + 2)) {
            size_t kl, vl;

            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "headers must map names to strings");
            pairs[2 * n] = lua_tolstring(L, -2, &kl);
            pairs[2 * n + 1] = lua_tolstring(L, -1, &vl);
            if (strlen(pairs[2 * n]) != kl || strlen(pairs[2 * n + 1]) != vl)
                return nul_fail(L, "a header");
            n++;
            lua_pop(L, 1);
        }
    }
    if (signalr_request_http(method, url, pairs, n, body, bl, ctype, &b->req,
                             &e))
        return push_fail(L, &e);
    if (pairs)
        lua_pop(L, 1);
    return 0;
}

/* core.http_request(method, url, headers, body, content_type)
 * -> request table | nil, msg, details (for the cosocket transport) */
static int l_http_request(lua_State *L)
{
    box *b;

    lua_settop(L, 5); /* the box goes above the arguments */
    b = new_box(L);
    int r = build_http(L, 1, b);

    return r ? r : push_request(L, b);
}

/* client:fetch(method, url, headers, body, content_type)
 * -> status, body | nil, msg, details.  Blocking, with the client's
 * timeouts, TLS settings and retries (5xx, 429, 408, transport). */
static int l_client_fetch(lua_State *L)
{
    lclient *lc = check_client(L);
    box *b = (lua_settop(L, 6), new_box(L));
    signalr_http_reply hr;
    signalr_error e;
    int r = build_http(L, 2, b);

    if (r)
        return r;
    if (!lc->h && signalr_http_new(&lc->h, &e))
        return push_fail(L, &e);
    if (signalr_http_fetch(lc->h, &b->req, &lc->http, &lc->retry, &hr, &e))
        return push_fail(L, &e);
    signalr_request_clear(&b->req);
    lua_pushinteger(L, hr.status);
    lua_pushlstring(L, hr.body, hr.body_len);
    return 2;
}

/* client:submit_fetch(method, url, headers, body, content_type)
 * -> id | nil, msg, details; the outcome has status and body. */
static int l_client_submit_fetch(lua_State *L)
{
    lclient *lc = check_client(L);
    box *b = (lua_settop(L, 6), new_box(L));
    signalr_error e;
    unsigned long id;
    int r = build_http(L, 2, b);

    if (r)
        return r;
    if (!lc->m && signalr_multi_new(lc->c, &lc->http, &lc->retry,
                                    lc->queue_size, lc->max_connections,
                                    &lc->m, &e))
        return push_fail(L, &e);
    if (signalr_multi_fetch(lc->m, &b->req, &id, &e))
        return push_fail(L, &e);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* client:set_access_key(kid, key) (nil, nil forgets it)
 * -> true | nil, msg, details */
static int l_client_set_access_key(lua_State *L)
{
    lclient *lc = check_client(L);
    const char *kid = luaL_optstring(L, 2, NULL);
    size_t kl = 0;
    const char *key = luaL_optlstring(L, 3, NULL, &kl);
    signalr_error e;

    if (signalr_client_set_access_key(lc->c, kid, key, kl, &e))
        return push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* client:credential() -> { client_id, tenant_id, client_cert,
 * client_secret } of an Entra ID connection string (for signalr.auth
 * only: the secret must go nowhere but the token endpoint) */
static int l_client_credential(lua_State *L)
{
    lclient *lc = check_client(L);
    const signalr_connstr *cs = signalr_client_connstr(lc->c);
    size_t sl;
    const char *secret = signalr_connstr_client_secret(cs, &sl);

    lua_createtable(L, 0, 4);
    lua_pushstring(L, signalr_connstr_client_id(cs));
    lua_setfield(L, -2, "client_id");
    lua_pushstring(L, signalr_connstr_tenant_id(cs));
    lua_setfield(L, -2, "tenant_id");
    lua_pushstring(L, signalr_connstr_client_cert(cs));
    lua_setfield(L, -2, "client_cert");
    if (secret) {
        lua_pushlstring(L, secret, sl);
        lua_setfield(L, -2, "client_secret");
    }
    return 1;
}

/* client:build(op, params[, now]) -> request table | nil, msg, details
 * For transports written in Lua (nginx cosockets). */
static int l_client_build(lua_State *L)
{
    lclient *lc = check_client(L);
    signalr_op op = check_op(L, 2);
    time_t now = (time_t)luaL_optnumber(L, 4, (lua_Number)time(NULL));
    signalr_params p;
    signalr_error e;
    const char *nul = read_params(L, 3, &p);
    box *b;

    if (nul)
        return nul_fail(L, nul);
    b = new_box(L);
    if (signalr_request_build(lc->c, op, &p, now, &b->req, &e))
        return push_fail(L, &e);
    return push_request(L, b);
}

/* client:negotiate(hub, user_id|nil, claims_json|nil, lifetime|nil[, now])
 * -> url, token | nil, msg, details */
static int l_client_negotiate(lua_State *L)
{
    lclient *lc = check_client(L);
    size_t hl, ul = 0;
    const char *hub = luaL_checklstring(L, 2, &hl);
    const char *user = luaL_optlstring(L, 3, NULL, &ul);
    const char *claims = luaL_optstring(L, 4, NULL);
    long lifetime = (long)luaL_optnumber(L, 5, 0);
    time_t now = (time_t)luaL_optnumber(L, 6, (lua_Number)time(NULL));
    signalr_error e;
    box *b;

    if (strlen(hub) != hl)
        return nul_fail(L, "hub name");
    if (user && strlen(user) != ul)
        return nul_fail(L, "user id");
    b = new_box(L);
    if (signalr_client_negotiate(lc->c, hub, user, claims, lifetime, now,
                                 &b->a, &b->b, &e))
        return push_fail(L, &e);
    lua_pushstring(L, b->a);
    lua_pushstring(L, b->b);
    return 2;
}

/* client:server_token(hub, server_id, want_token[, lifetime[, now]])
 * -> url, token|nil | nil, msg, details (persistent mode) */
static int l_client_server_token(lua_State *L)
{
    lclient *lc = check_client(L);
    const char *hub = luaL_checkstring(L, 2);
    const char *id = luaL_optstring(L, 3, NULL);
    int want = lua_toboolean(L, 4);
    long lifetime = (long)luaL_optnumber(L, 5, 0);
    time_t now = (time_t)luaL_optnumber(L, 6, (lua_Number)time(NULL));
    signalr_error e;
    box *b = new_box(L);

    if (signalr_client_server_token(lc->c, hub, id, lifetime, now, &b->a,
                                    want ? &b->b : NULL, &e))
        return push_fail(L, &e);
    lua_pushstring(L, b->a);
    if (b->b)
        lua_pushstring(L, b->b);
    else
        lua_pushnil(L);
    return 2;
}

/* ===== stateless functions ===== */

/* core.read_reply(op, status, error_code|nil, body|nil)
 * -> true | false | body (operations that answer with data)
 *    | nil, msg, details */
static int l_read_reply(lua_State *L)
{
    signalr_op op = check_op(L, 1);
    signalr_reply r;
    signalr_error e;
    int value;

    r.status = (int)luaL_checknumber(L, 2);
    r.error_code = luaL_optstring(L, 3, NULL);
    r.body = luaL_optlstring(L, 4, NULL, &r.body_len);
    if (signalr_reply_read(op, &r, &value, &e))
        return push_fail(L, &e);
    if (signalr_op_returns_data(op))
        lua_pushlstring(L, r.body ? r.body : "", r.body ? r.body_len : 0);
    else
        lua_pushboolean(L, value);
    return 1;
}

/* core.retry_delay(op, attempt, failure_code, status, retry_after,
 *                  retries, base_s, max_s) -> seconds | nil */
static int l_retry_delay(lua_State *L)
{
    /* "http": an identity request (signalr_request_http()) */
    signalr_op op = !strcmp(luaL_checkstring(L, 1), "http") ? SIGNALR_OP_MAX
                                                            : check_op(L, 1);
    int attempt = (int)luaL_checknumber(L, 2);
    const char *code = luaL_checkstring(L, 3);
    int status = (int)luaL_optnumber(L, 4, 0);
    long ra = (long)luaL_optnumber(L, 5, -1);
    signalr_retry_policy pol;
    signalr_err failure = SIGNALR_EHTTP;
    long d;
    int i;

    pol.max_retries = (int)luaL_checknumber(L, 6);
    pol.base_delay_ms = (long)(luaL_checknumber(L, 7) * 1000);
    pol.max_delay_ms = (long)(luaL_checknumber(L, 8) * 1000);
    for (i = 0; i < SIGNALR_ERR_MAX; i++)
        if (!strcmp(signalr_err_name((signalr_err)i), code))
            failure = (signalr_err)i;
    d = signalr_retry_delay(op, &pol, attempt, failure, status, ra);
    if (d < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, d / 1000.0);
    return 1;
}

static int l_jwt_sign(lua_State *L)
{
    size_t pl, kl;
    const char *payload = luaL_checklstring(L, 1, &pl);
    const char *key = luaL_checklstring(L, 2, &kl);
    const char *kid = luaL_optstring(L, 3, NULL);
    signalr_error e;
    box *b = new_box(L);

    if (signalr_jwt_sign_kid(payload, pl, (const unsigned char *)key, kl, kid,
                             &b->a, NULL, &e))
        return push_fail(L, &e);
    lua_pushstring(L, b->a);
    return 1;
}

/* core.jwt_sign_rs256(payload_json, pem_path) -> token | nil, msg, details */
static int l_jwt_sign_rs256(lua_State *L)
{
    size_t pl, fl;
    const char *payload = luaL_checklstring(L, 1, &pl);
    const char *path = luaL_checklstring(L, 2, &fl);
    signalr_error e;
    box *b;

    if (strlen(path) != fl)
        return nul_fail(L, "certificate path");
    b = new_box(L);
    if (signalr_jwt_sign_rs256(payload, pl, path, &b->a, NULL, &e))
        return push_fail(L, &e);
    lua_pushstring(L, b->a);
    return 1;
}

/* core.jwt_verify(token, key[, now]) -> payload_json | nil, msg, details
 * now = 0 skips the expiry check. */
static int l_jwt_verify(lua_State *L)
{
    size_t tl, kl, pl = 0;
    const char *tok = luaL_checklstring(L, 1, &tl);
    const char *key = luaL_checklstring(L, 2, &kl);
    time_t now = (time_t)luaL_optnumber(L, 3, (lua_Number)time(NULL));
    signalr_error e;
    box *b = new_box(L);

    if (signalr_jwt_verify(tok, tl, (const unsigned char *)key, kl, now,
                           &b->a, &pl, &e))
        return push_fail(L, &e);
    lua_pushlstring(L, b->a, pl);
    return 1;
}

static int l_url_encode(lua_State *L)
{
    size_t n, need;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer buf;
    char *p;

    need = signalr_url_encode(NULL, 0, s, n);
    luaL_buffinit(L, &buf);
    if (need < LUAL_BUFFERSIZE) {
        p = luaL_prepbuffer(&buf);
        signalr_url_encode(p, need + 1, s, n);
        luaL_addsize(&buf, need);
    } else {
        size_t i;

        for (i = 0; i < n; i++) {
            char tmp[4];
            size_t k = signalr_url_encode(tmp, sizeof(tmp), s + i, 1);

            luaL_addlstring(&buf, tmp, k);
        }
    }
    luaL_pushresult(&buf);
    return 1;
}

/* core.url_decode(s[, plus_is_space]) -> string | nil, msg, details */
static int l_url_decode(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    int plus = lua_toboolean(L, 2);
    char *p = lua_newuserdatauv(L, n + 1, 0);

    m = signalr_url_decode(p, s, n, plus);
    if (m == (size_t)-1)
        return fail_msg(L, SIGNALR_EINVAL, "malformed percent-escape");
    lua_pushlstring(L, p, m);
    return 1;
}

/* core.validate(kind, s) -> true | nil, msg, details
 * kind: "hub", "group", or a label for ids ("user id", ...). */
static int l_validate(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    signalr_error e;
    signalr_err rc;

    if (!strcmp(kind, "hub"))
        rc = signalr_validate_hub(s, n, &e);
    else if (!strcmp(kind, "group"))
        rc = signalr_validate_group(s, n, &e);
    else
        rc = signalr_validate_id(kind, s, n, &e);
    if (rc)
        return push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg client_methods[] = {
    {"call", l_client_call},
    {"build", l_client_build},
    {"negotiate", l_client_negotiate},
    {"server_token", l_client_server_token},
    {"info", l_client_info},
    {"submit", l_client_submit},
    {"poll", l_client_poll},
    {"pending", l_client_pending},
    {"cancel", l_client_cancel},
    {"timeout", l_client_timeout},
    {"fds", l_client_fds},
    {"pollfd", l_client_pollfd},
    {"fetch", l_client_fetch},
    {"submit_fetch", l_client_submit_fetch},
    {"set_access_key", l_client_set_access_key},
    {"credential", l_client_credential},
    {"close", l_client_close},
    {NULL, NULL}
};

/* ===== serverless upstream signatures ===== */

/* core.upstream_sign(key, connection_id) -> "sha256=<HEX>" */
static int l_upstream_sign(lua_State *L)
{
    const char *key = luaL_checkstring(L, 1);
    size_t n;
    const char *id = luaL_checklstring(L, 2, &n);
    char out[SIGNALR_SIGNATURE_LEN + 1];
    signalr_error e;

    if (signalr_upstream_sign(key, id, n, out, &e))
        return push_fail(L, &e);
    lua_pushstring(L, out);
    return 1;
}

/* core.upstream_verify(header, connection_id, { key, ... }) -> the index
 * of the key that signed it | false, "mismatch" | false, "malformed" */
static int l_upstream_verify(lua_State *L)
{
    size_t hn, idn, nkeys, i;
    const char *h = luaL_checklstring(L, 1, &hn);
    const char *id = luaL_checklstring(L, 2, &idn);
    const char *keys[16];
    int r;

    luaL_checktype(L, 3, LUA_TTABLE);
    nkeys = (size_t)lua_rawlen(L, 3);
    if (nkeys > 16)
        return luaL_argerror(L, 3, "at most 16 keys");
    for (i = 0; i < nkeys; i++) {
        lua_rawgeti(L, 3, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 3, "keys must be strings");
        keys[i] = lua_tostring(L, -1);
        lua_pop(L, 1); /* the table keeps the string alive */
    }
    r = signalr_upstream_verify(h, hn, id, idn, keys, nkeys);
    if (r >= 0) {
        lua_pushinteger(L, r + 1);
        return 1;
    }
    if (r == -3)
        return luaL_error(L, "signalr.core: HMAC-SHA256 failed");
    lua_pushboolean(L, 0);
    lua_pushstring(L, r == -2 ? "malformed" : "mismatch");
    return 2;
}

/* ===== pollset: one descriptor over several clients' ===== */

typedef struct {
    signalr_pollset *s;
} lpollset;

static lpollset *check_pollset(lua_State *L)
{
    lpollset *p = luaL_checkudata(L, 1, POLLSET_MT);

    if (!p->s)
        luaL_error(L, "signalr.core: the pollset is closed");
    return p;
}

/* core.pollset() -> set | nil, msg, details (no epoll: EUNSUPPORTED) */
static int l_pollset(lua_State *L)
{
    lpollset *p = lua_newuserdata(L, sizeof(*p));
    signalr_error e;

    p->s = NULL;
    luaL_setmetatable(L, POLLSET_MT);
    if (signalr_pollset_new(&p->s, &e))
        return push_fail(L, &e);
    return 1;
}

/* Watch the descriptor at argument 2 for ev: true | nil, msg, details */
static int watch_fd(lua_State *L, int ev)
{
    lpollset *p = check_pollset(L);
    lua_Integer fd = luaL_checkinteger(L, 2);
    signalr_error e;

    if (fd < 0 || fd > 0x7fffffff)
        return luaL_argerror(L, 2, "not a descriptor");
    if (signalr_pollset_watch(p->s, (int)fd, ev, &e))
        return push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* set:add(fd): watch it for reading */
static int l_pollset_add(lua_State *L)
{
    return watch_fd(L, 1);
}

/* set:watch(fd, read, write) */
static int l_pollset_watch(lua_State *L)
{
    return watch_fd(L, (lua_toboolean(L, 3) ? 1 : 0) | (lua_toboolean(L, 4) ? 2 : 0));
}

static int l_pollset_remove(lua_State *L)
{
    lpollset *p = check_pollset(L);
    lua_Integer fd = luaL_checkinteger(L, 2);

    if (fd >= 0 && fd <= 0x7fffffff)
        signalr_pollset_remove(p->s, (int)fd);
    return 0;
}

static int l_pollset_fd(lua_State *L)
{
    lua_pushinteger(L, signalr_pollset_fd(check_pollset(L)->s));
    return 1;
}

/* set:wait(seconds) -> true (readable) | false (timed out) | nil, msg */
static int l_pollset_wait(lua_State *L)
{
    lpollset *p = check_pollset(L);
    lua_Number t = luaL_optnumber(L, 2, 0);
    signalr_error e;
    int r;

    r = signalr_pollset_wait(p->s, t < 0 ? -1 : (long)(t * 1000 + 0.5), &e);
    if (r < 0)
        return push_fail(L, &e);
    lua_pushboolean(L, r);
    return 1;
}

static int l_pollset_close(lua_State *L)
{
    lpollset *p = luaL_checkudata(L, 1, POLLSET_MT);

    signalr_pollset_free(p->s);
    p->s = NULL;
    return 0;
}

static const luaL_Reg pollset_methods[] = {
    {"add", l_pollset_add},
    {"watch", l_pollset_watch},
    {"remove", l_pollset_remove},
    {"fd", l_pollset_fd},
    {"wait", l_pollset_wait},
    {"close", l_pollset_close},
    {NULL, NULL}
};

/* core.monotonic() -> seconds on a monotonic clock (for deadlines) */
static int l_monotonic(lua_State *L)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"monotonic", l_monotonic},
    {"pollset", l_pollset},
    {"upstream_sign", l_upstream_sign},
    {"upstream_verify", l_upstream_verify},
    {"client", l_client},
    {"read_reply", l_read_reply},
    {"retry_delay", l_retry_delay},
    {"http_request", l_http_request},
    {"jwt_sign", l_jwt_sign},
    {"jwt_sign_rs256", l_jwt_sign_rs256},
    {"jwt_verify", l_jwt_verify},
    {"url_encode", l_url_encode},
    {"url_decode", l_url_decode},
    {"validate", l_validate},
    {NULL, NULL}
};

int luaopen_signalr_core(lua_State *L);

__attribute__((visibility("default"))) int luaopen_signalr_core(lua_State *L)
{
    int i;

    /* refcounted by curl; thread-safe from curl 7.84 on */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "signalr.core: curl_global_init failed");
    if (luaL_newmetatable(L, CLIENT_MT)) {
        luaL_newlib(L, client_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_client_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_client_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_client_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "signalr.client");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, POLLSET_MT)) {
        luaL_newlib(L, pollset_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_pollset_close);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "signalr.pollset");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    sr_lua_open_persistent(L);
    lua_createtable(L, SIGNALR_OP_MAX, 0);
    for (i = 0; i < SIGNALR_OP_MAX; i++) {
        lua_pushstring(L, signalr_op_name((signalr_op)i));
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "operations");
    lua_pushinteger(L, SIGNALR_MAX_BODY);
    lua_setfield(L, -2, "MAX_BODY");
    lua_pushliteral(L, SIGNALR_VERSION);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
