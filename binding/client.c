/* client.c - the client userdata (`core.client`): its options, blocking
 * calls and fetches, built requests for Lua transports, negotiate and
 * server tokens, the Entra ID access key.  The asynchronous methods are
 * async.c's. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

lclient *sr_lua_check_client(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);

    if (!lc->c)
        luaL_error(L, "signalr client is closed");
    /* the state of this call, with the client at index 1: what the
     * core's log lines reach (never a coroutine of an earlier call,
     * which may be gone) */
    lc->L = L;
    return lc;
}

static long opt_ms(lua_State *L, int t, const char *k, long dflt)
{
    long v = dflt;

    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1))
        v = (long)(luaL_checknumber(L, -1) * 1000.0);
    lua_pop(L, 1);
    return v;
}

/* log_call(log, level, msg): log(level name, msg) in a protected call
 * (the strings are made inside it) */
static int log_call(lua_State *L)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    lua_Integer level = lua_tointeger(L, 2);

    lua_pushvalue(L, 1);
    lua_pushstring(L, names[level >= 0 && level <= 3 ? level : 3]);
    lua_pushstring(L, (const char *)lua_touserdata(L, 3));
    lua_call(L, 2, 0);
    return 0;
}

/* The core's log hook: the client's log function, from the state of the
 * call under way (only calls into the core log); its errors are dropped. */
static void core_log(void *ud, signalr_log_level level, const char *msg)
{
    lclient *lc = ud;
    lua_State *L = lc->L;

    if (!L || !lc->has_log || lua_touserdata(L, 1) != lc ||
        !lua_checkstack(L, 5))
        return;
    lua_pushcfunction(L, log_call);
    sr_lua_getuv(L, 1);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
    lua_pushinteger(L, (lua_Integer)level);
    lua_pushlightuserdata(L, (void *)msg);
    if (lua_pcall(L, 3, 0, 0))
        lua_pop(L, 1);
}

/* core.client(connection_string, opts) -> client | nil, msg, details
 * opts (checked by the Lua layer): api_version, application, user_agent,
 * token_lifetime (s), timeout, connect_timeout, retry_delay,
 * max_retry_delay (s), retries, retry_mode ("fixed" or "exponential"),
 * verify_tls, ca_file, proxy (a proxy URL), log (a function(level, msg)
 * for the core's log lines: retries). */
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
        o.api_version = sr_lua_opt_field(L, 2, "api_version", NULL, &nul);
        o.application = sr_lua_opt_field(L, 2, "application", NULL, &nul);
        o.user_agent = sr_lua_opt_field(L, 2, "user_agent", NULL, &nul);
        o.product_info = sr_lua_opt_field(L, 2, "product_info", NULL, &nul);
        lua_getfield(L, 2, "token_lifetime");
        o.token_lifetime = (long)luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
    }
    if (nul)
        return sr_lua_nul_fail(L, nul);
    lc = lua_newuserdatauv(L, sizeof(*lc), 1);
    memset(lc, 0, sizeof(*lc));
    luaL_setmetatable(L, CLIENT_MT);
    lc->http.verify_tls = 1;
    lc->http.timeout_ms = 10000;
    lc->retry.max_retries = 0;
    lc->retry.base_delay_ms = 500;
    lc->retry.max_delay_ms = 10000;
    if (lua_istable(L, 2)) {
        const char *ca, *mode;

        lc->http.timeout_ms = opt_ms(L, 2, "timeout", lc->http.timeout_ms);
        lc->http.connect_timeout_ms = opt_ms(L, 2, "connect_timeout", 0);
        lc->retry.base_delay_ms = opt_ms(L, 2, "retry_delay",
                                         lc->retry.base_delay_ms);
        lc->retry.max_delay_ms = opt_ms(L, 2, "max_retry_delay",
                                        lc->retry.max_delay_ms);
        lua_getfield(L, 2, "retries");
        lc->retry.max_retries = (int)luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
        mode = sr_lua_opt_field(L, 2, "retry_mode", NULL, &nul);
        if (mode && !strcmp(mode, "fixed"))
            lc->retry.mode = SIGNALR_RETRY_FIXED;
        lua_getfield(L, 2, "log");
        if (lua_isfunction(L, -1)) {
            lua_createtable(L, 1, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
            sr_lua_setuv(L, -2); /* the client, below { log } */
            lc->has_log = 1;
            lc->http.log = core_log;
            lc->http.log_ud = lc;
        } else {
            lua_pop(L, 1);
        }
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
        ca = sr_lua_opt_field(L, 2, "ca_file", NULL, &nul);
        if (nul) /* a NUL would silently cut the path short */
            return sr_lua_nul_fail(L, nul);
        if (ca) {
            size_t n = strlen(ca);

            lc->ca_file = malloc(n + 1);
            if (!lc->ca_file)
                return luaL_error(L, "out of memory");
            memcpy(lc->ca_file, ca, n + 1);
            lc->http.ca_file = lc->ca_file;
        }
        ca = sr_lua_opt_field(L, 2, "proxy", NULL, &nul);
        if (nul)
            return sr_lua_nul_fail(L, nul);
        if (ca) {
            size_t n = strlen(ca);

            lc->proxy = malloc(n + 1);
            if (!lc->proxy)
                return luaL_error(L, "out of memory");
            memcpy(lc->proxy, ca, n + 1);
            lc->http.proxy = lc->proxy;
        }
    }
    if (signalr_client_new(cs, len, &o, &lc->c, &e))
        return sr_lua_push_fail(L, &e);
    return 1;
}

static int l_client_close(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);

    lc->L = L; /* (nothing logs while closing; never an earlier state) */
    signalr_multi_free(lc->m); /* borrows the client: first */
    signalr_client_free(lc->c);
    signalr_http_free(lc->h);
    lc->m = NULL;
    free(lc->ca_file);
    free(lc->proxy);
    lc->proxy = NULL;
    lc->http.proxy = NULL;
    lc->c = NULL;
    lc->h = NULL;
    lc->ca_file = NULL;
    lc->L = NULL;
    lc->has_log = 0; /* (its function goes with the userdata) */
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
    lclient *lc = sr_lua_check_client(L);
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
/* Perform op with p (read from the stack; nul: a field holding a NUL
 * byte) and push what client:call answers. */
static int call_with(lua_State *L, lclient *lc, signalr_op op,
                     const signalr_params *p, const char *nul)
{
    signalr_error e;
    int value = 0;

    if (nul)
        return sr_lua_nul_fail(L, nul);
    if (!lc->h && signalr_http_new(&lc->h, &e))
        return sr_lua_push_fail(L, &e);
    lc->L = L;
    if (signalr_op_returns_data(op)) {
        box *b = sr_lua_new_box(L); /* owns the body: freed even if we raise */
        size_t n;

        if (signalr_call_data(lc->c, lc->h, op, p, &lc->http, &lc->retry,
                              &value, &b->a, &n, &e))
            return sr_lua_push_fail(L, &e);
        lua_pushlstring(L, b->a ? b->a : "", b->a ? n : 0);
        return 1;
    }
    if (signalr_call(lc->c, lc->h, op, p, &lc->http, &lc->retry, &value, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, value);
    return 1;
}

static int l_client_call(lua_State *L)
{
    return sr_lua_client_op(L, 0, call_with);
}

/* call_send and wire_send given the argument list itself (a table) where
 * the JSON text goes: read as sr_lua_read_send reads (its raises come
 * before the shared JSON buffer, upvalue 2, is taken), then encoded here
 * and not checked again.  NULL: not the common case (the caller answers
 * false, and its general path encodes or explains). */
static const char *table_send(lua_State *L, signalr_op op, signalr_params *p,
                              const char **nul, void **held)
{
    const char *text;
    size_t n = 0;

    lua_settop(L, 8);
    lua_pushvalue(L, 5); /* the list, at 9 */
    lua_pushnil(L);
    lua_replace(L, 5);
    *nul = sr_lua_read_send(L, 3, op, p);
    text = sr_lua_json_args(L, 9, lua_upvalueindex(2), &n, NULL, NULL, held);
    if (text) {
        p->arguments = text;
        p->arguments_len = n;
        p->arguments_checked = 1;
    }
    return text;
}

/* client:call_send(op, hub, target, arguments, id, excluded): call for
 * the four sends, their fields as arguments (no table per send).
 * arguments: the JSON text, or the argument list (a table) to encode
 * here in the same call; false then when it is not the common case (a
 * table whose [1] is set that encodes as an array). */
static int l_client_call_send(lua_State *L)
{
    if (lua_type(L, 5) == LUA_TTABLE) {
        lclient *lc = sr_lua_check_client(L);
        signalr_op op = sr_lua_check_op(L, 2);
        signalr_params p;
        const char *nul;
        void *held = NULL;
        int r;

        if (!table_send(L, op, &p, &nul, &held)) {
            lua_pushboolean(L, 0);
            return 1;
        }
        r = call_with(L, lc, op, &p, nul);
        sr_lua_json_args_done(held);
        return r;
    }
    return sr_lua_client_op(L, 1, call_with);
}

/* client:fetch(method, url, headers, body, content_type)
 * -> status, body | nil, msg, details.  Blocking, with the client's
 * timeouts, TLS settings and retries (5xx, 429, 408, transport). */
static int l_client_fetch(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    box *b = (lua_settop(L, 6), sr_lua_new_box(L));
    signalr_http_reply hr;
    signalr_error e;
    int r = sr_lua_build_http(L, 2, b);

    if (r)
        return r;
    if (!lc->h && signalr_http_new(&lc->h, &e))
        return sr_lua_push_fail(L, &e);
    lc->L = L;
    if (signalr_http_fetch(lc->h, &b->req, &lc->http, &lc->retry, &hr, &e))
        return sr_lua_push_fail(L, &e);
    signalr_request_clear(&b->req);
    lua_pushinteger(L, hr.status);
    lua_pushlstring(L, hr.body, hr.body_len);
    return 2;
}

/* client:set_access_key(kid, key) (nil, nil forgets it)
 * -> true | nil, msg, details */
static int l_client_set_access_key(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    const char *kid = luaL_optstring(L, 2, NULL);
    size_t kl = 0;
    const char *key = luaL_optlstring(L, 3, NULL, &kl);
    signalr_error e;

    if (signalr_client_set_access_key(lc->c, kid, key, kl, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* client:credential() -> { client_id, tenant_id, client_cert,
 * client_secret } of an Entra ID connection string (for signalr.auth
 * only: the secret must go nowhere but the token endpoint) */
static int l_client_credential(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
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
    lclient *lc = sr_lua_check_client(L);
    signalr_op op = sr_lua_check_op(L, 2);
    time_t now = (time_t)luaL_optnumber(L, 4, (lua_Number)time(NULL));
    signalr_params p;
    signalr_error e;
    const char *nul = sr_lua_read_params(L, 3, &p);
    box *b;

    if (nul)
        return sr_lua_nul_fail(L, nul);
    b = sr_lua_new_box(L);
    if (signalr_request_build(lc->c, op, &p, now, &b->req, &e))
        return sr_lua_push_fail(L, &e);
    return sr_lua_push_request(L, b);
}

/* client:wire(op, params[, now]) -> bytes, host, port, tls, idempotent,
 * method | nil, msg, details
 * The whole request (head and body) as one string, for transports
 * written in Lua that move the bytes (nginx cosockets). */
/* Build op with p into one string and push what client:wire answers.
 * The request and its bytes are held by the methods' reused box (their
 * upvalue: no userdata per call), given back once the results are
 * pushed. */
static int wire_with(lua_State *L, lclient *lc, signalr_op op,
                     const signalr_params *p, const char *nul, time_t now)
{
    signalr_error e;
    size_t n = 0;
    box *b;

    if (nul)
        return sr_lua_nul_fail(L, nul);
    b = sr_lua_take_box(L, lua_upvalueindex(1));
    if (signalr_request_build(lc->c, op, p, now, &b->req, &e) ||
        signalr_request_wire(&b->req, &b->a, &n, &e)) {
        sr_lua_give_box(b);
        return sr_lua_push_fail(L, &e);
    }
    lua_pushlstring(L, b->a, n);
    lua_pushstring(L, b->req.host);
    lua_pushinteger(L, b->req.port);
    lua_pushboolean(L, b->req.tls);
    lua_pushboolean(L, b->req.idempotent);
    lua_pushstring(L, b->req.method);
    sr_lua_give_box(b);
    return 6;
}

static int l_client_wire(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    signalr_op op = sr_lua_check_op(L, 2);
    time_t now = (time_t)luaL_optnumber(L, 4, (lua_Number)time(NULL));
    signalr_params p;
    const char *nul = sr_lua_read_params(L, 3, &p);

    return wire_with(L, lc, op, &p, nul, now);
}

/* client:wire_send(op, hub, target, arguments, id, excluded[, now]):
 * client:wire for the four sends, their fields as arguments (arguments:
 * JSON text, or a table as call_send takes it) */
static int l_client_wire_send(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    signalr_op op = sr_lua_check_op(L, 2);
    time_t now = (time_t)luaL_optnumber(L, 8, (lua_Number)time(NULL));
    signalr_params p;
    const char *nul;
    void *held = NULL;
    int r;

    if (lua_type(L, 5) != LUA_TTABLE) {
        nul = sr_lua_read_send(L, 3, op, &p);
        return wire_with(L, lc, op, &p, nul, now);
    }
    if (!table_send(L, op, &p, &nul, &held)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    r = wire_with(L, lc, op, &p, nul, now);
    sr_lua_json_args_done(held);
    return r;
}

/* client:negotiate(hub, user_id|nil, claims_json|nil, lifetime|nil[, now
 * [, diagnostic[, detailed_errors]]]) -> url, token | nil, msg, details */
static int l_client_negotiate(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    size_t hl, ul = 0;
    const char *hub = luaL_checklstring(L, 2, &hl);
    const char *user = luaL_optlstring(L, 3, NULL, &ul);
    const char *claims = luaL_optstring(L, 4, NULL);
    long lifetime = (long)luaL_optnumber(L, 5, 0);
    time_t now = (time_t)luaL_optnumber(L, 6, (lua_Number)time(NULL));
    unsigned flags = (lua_toboolean(L, 7) ? SIGNALR_NEGOTIATE_DIAGNOSTIC : 0u) |
                     (lua_toboolean(L, 8) ? SIGNALR_NEGOTIATE_DETAILED_ERRORS
                                          : 0u);
    signalr_error e;
    box *b;

    if (strlen(hub) != hl)
        return sr_lua_nul_fail(L, "hub name");
    if (user && strlen(user) != ul)
        return sr_lua_nul_fail(L, "user id");
    b = sr_lua_new_box(L);
    if (signalr_client_negotiate_with(lc->c, hub, user, claims, flags,
                                      lifetime, now, &b->a, &b->b, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushstring(L, b->a);
    lua_pushstring(L, b->b);
    return 2;
}

/* client:server_token(hub, server_id, want_token[, lifetime[, now]])
 * -> url, token|nil | nil, msg, details (persistent mode) */
static int l_client_server_token(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    const char *hub = luaL_checkstring(L, 2);
    const char *id = luaL_optstring(L, 3, NULL);
    int want = lua_toboolean(L, 4);
    long lifetime = (long)luaL_optnumber(L, 5, 0);
    time_t now = (time_t)luaL_optnumber(L, 6, (lua_Number)time(NULL));
    signalr_error e;
    box *b = sr_lua_new_box(L);

    if (signalr_client_server_token(lc->c, hub, id, lifetime, now, &b->a,
                                    want ? &b->b : NULL, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushstring(L, b->a);
    if (b->b)
        lua_pushstring(L, b->b);
    else
        lua_pushnil(L);
    return 2;
}

static const luaL_Reg client_methods[] = {
    {"call", l_client_call},
    {"call_send", l_client_call_send},
    {"build", l_client_build},
    {"wire", l_client_wire},
    {"wire_send", l_client_wire_send},
    {"negotiate", l_client_negotiate},
    {"server_token", l_client_server_token},
    {"info", l_client_info},
    {"fetch", l_client_fetch},
    {"set_access_key", l_client_set_access_key},
    {"credential", l_client_credential},
    {"close", l_client_close},
    {NULL, NULL}
};

void sr_lua_open_client(lua_State *L)
{
    if (luaL_newmetatable(L, CLIENT_MT)) {
        lua_newtable(L);
        sr_lua_new_box(L); /* the methods' reused box (wire_with) */
        sr_lua_push_json_buffer(L); /* and the JSON encoder's (*_send) */
        luaL_setfuncs(L, client_methods, 2);
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
    lua_pushcfunction(L, l_client);
    lua_setfield(L, -2, "client");
}
