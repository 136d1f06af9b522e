/* params.c - operations' params tables in, request tables out: what the
 * client's methods and the transports written in Lua (nginx cosockets)
 * hand to the core and get back from it. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <string.h>

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

/* The list of connection ids at index idx into p->excluded: the pointer
 * array is a userdata pushed on the stack (it lives until the C function
 * returns).  Returns nul, or "excluded" for an id holding a NUL byte. */
static const char *read_excluded(lua_State *L, int idx, signalr_params *p,
                                 const char *nul)
{
    size_t i, n;
    const char **ids;

    if (!lua_istable(L, idx))
        luaL_error(L, "params.excluded must be a list of connection ids");
    n = lua_rawlen(L, idx);
    /* the pointer array lives in a userdata: no leak if we raise */
    ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*ids), 0);
    for (i = 0; i < n; i++) {
        size_t len;

        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "params.excluded[%d] must be a string", (int)i + 1);
        ids[i] = lua_tolstring(L, -1, &len);
        if (strlen(ids[i]) != len && !nul)
            nul = "excluded";
        lua_pop(L, 1);
    }
    p->excluded = ids;
    p->excluded_count = n;
    return nul;
}

/* An optional string argument at index i (nil: NULL, which the core
 * answers as the table form's missing field; another type raises, numbers
 * too, as sr_lua_opt_field does); *nul names the first field holding a
 * NUL byte; *len (when given) is its length. */
static const char *string_at(lua_State *L, int i, const char *name,
                             const char **nul, size_t *len)
{
    size_t n;
    const char *s;
    int t = lua_type(L, i);

    if (len)
        *len = 0;
    if (t == LUA_TNONE || t == LUA_TNIL)
        return NULL;
    if (t != LUA_TSTRING)
        luaL_error(L, "params.%s must be a string", name);
    s = lua_tolstring(L, i, &n);
    if (len)
        *len = n;
    else if (!*nul && strlen(s) != n)
        *nul = name;
    return s;
}

/* Read a params table at index t into p.  Returns NULL or the name of a
 * field holding a NUL byte (the caller answers EINVAL). */
const char *sr_lua_read_params(lua_State *L, int t, signalr_params *p)
{
    const char *nul = NULL;

    luaL_checktype(L, t, LUA_TTABLE);
    memset(p, 0, sizeof(*p));
    p->hub = sr_lua_opt_field(L, t, "hub", NULL, &nul);
    p->user = sr_lua_opt_field(L, t, "user", NULL, &nul);
    p->group = sr_lua_opt_field(L, t, "group", NULL, &nul);
    p->connection = sr_lua_opt_field(L, t, "connection", NULL, &nul);
    p->target = sr_lua_opt_field(L, t, "target", NULL, &nul);
    p->reason = sr_lua_opt_field(L, t, "reason", NULL, &nul);
    p->bearer = sr_lua_opt_field(L, t, "bearer", NULL, &nul);
    p->arguments = sr_lua_opt_field(L, t, "arguments", &p->arguments_len,
                                    &nul);
    p->continuation_token = sr_lua_opt_field(L, t, "continuation_token",
                                             NULL, &nul);
    p->filter = sr_lua_opt_field(L, t, "filter", NULL, &nul);
    p->commands = sr_lua_opt_field(L, t, "commands", &p->commands_len, &nul);
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
        nul = read_excluded(L, lua_gettop(L), p, nul);
        /* leave the array on the stack until the C function returns */
        lua_remove(L, -2);
        return nul;
    }
    lua_pop(L, 1);
    return nul;
}

/* A send's fields, at index i: hub, target, arguments (JSON text), the
 * id (user, group or connection, by op; nil for broadcast) and excluded
 * (a list of connection ids, or nil).  The same checks and field names
 * as sr_lua_read_params, without a table per send.  Returns NULL or the
 * name of a field holding a NUL byte. */
const char *sr_lua_read_send(lua_State *L, int i, signalr_op op,
                             signalr_params *p)
{
    const char *nul = NULL;

    memset(p, 0, sizeof(*p));
    p->ttl = SIGNALR_TTL_NONE;
    p->hub = string_at(L, i, "hub", &nul, NULL);
    /* (NUL bytes named in sr_lua_read_params' order: the id first) */
    if (op == SIGNALR_OP_SEND_TO_USER)
        p->user = string_at(L, i + 3, "user", &nul, NULL);
    else if (op == SIGNALR_OP_SEND_TO_GROUP)
        p->group = string_at(L, i + 3, "group", &nul, NULL);
    else if (op == SIGNALR_OP_SEND_TO_CONNECTION)
        p->connection = string_at(L, i + 3, "connection", &nul, NULL);
    else if (op != SIGNALR_OP_BROADCAST)
        luaL_argerror(L, i - 1, "not a send");
    else if (!lua_isnoneornil(L, i + 3))
        luaL_argerror(L, i + 3, "a broadcast takes no id");
    p->target = string_at(L, i + 1, "target", &nul, NULL);
    /* JSON text is length-delimited: a NUL byte in it is the core's to
     * refuse */
    p->arguments = string_at(L, i + 2, "arguments", &nul, &p->arguments_len);
    if (!lua_isnoneornil(L, i + 4))
        nul = read_excluded(L, i + 4, p, nul);
    return nul;
}

/* Push built request b->req as a table for transports written in Lua
 * (nginx cosockets), then release it.  Returns 1. */
int sr_lua_push_request(lua_State *L, box *b)
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
int sr_lua_build_http(lua_State *L, int i, box *b)
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
        return sr_lua_nul_fail(L, "url");
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

            if (lua_type(L, -2) != LUA_TSTRING ||
                lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "headers must map names to strings");
            pairs[2 * n] = lua_tolstring(L, -2, &kl);
            pairs[2 * n + 1] = lua_tolstring(L, -1, &vl);
            if (strlen(pairs[2 * n]) != kl || strlen(pairs[2 * n + 1]) != vl)
                return sr_lua_nul_fail(L, "a header");
            n++;
            lua_pop(L, 1);
        }
    }
    if (signalr_request_http(method, url, pairs, n, body, bl, ctype, &b->req,
                             &e))
        return sr_lua_push_fail(L, &e);
    if (pairs)
        lua_pop(L, 1);
    return 0;
}

int sr_lua_client_op(lua_State *L, int send, sr_lua_op_fn fn)
{
    lclient *lc = sr_lua_check_client(L);
    signalr_op op = sr_lua_check_op(L, 2);
    signalr_params p;
    const char *nul = send ? sr_lua_read_send(L, 3, op, &p)
                           : sr_lua_read_params(L, 3, &p);

    return fn(L, lc, op, &p, nul);
}
