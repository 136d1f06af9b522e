/* persistent.c - the part of `signalr.core` persistent mode uses: the
 * service protocol's writers and reader, the WebSocket client without
 * I/O and libcurl's connect-only socket, as Lua values.  No policy: the
 * connection's life (handshake, pings, acks, reconnects) is
 * lua/signalr/persistent.lua's. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define WS_MT "signalr.ws"
#define SOCK_MT "signalr.sock"

/* Frames are built into C memory and copied into a Lua string; the
 * pointer is held in a userdata box so a raising push cannot leak it. */
typedef struct {
    char *p;
} cbuf;

static int cbuf_gc(lua_State *L)
{
    cbuf *b = lua_touserdata(L, 1);

    if (b) {
        signalr_free(b->p);
        b->p = NULL;
    }
    return 0;
}

static cbuf *new_cbuf(lua_State *L)
{
    cbuf *b = lua_newuserdata(L, sizeof(*b));

    b->p = NULL;
    lua_newtable(L);
    lua_pushcfunction(L, cbuf_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    return b;
}

static int push_frame(lua_State *L, cbuf *b, size_t n)
{
    lua_pushlstring(L, b->p, n);
    signalr_free(b->p);
    b->p = NULL;
    return 1;
}

/* A Lua list of strings at idx (nil: none) as a C array kept alive by a
 * userdata on the stack. */
static const char **string_list(lua_State *L, int idx, size_t *count)
{
    size_t n, i;
    const char **v;

    *count = 0;
    if (lua_isnoneornil(L, idx))
        return NULL;
    luaL_checktype(L, idx, LUA_TTABLE);
    n = (size_t)lua_rawlen(L, idx);
    v = lua_newuserdata(L, (n ? n : 1) * sizeof(*v));
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "signalr.core: item %d of the list is not a string",
                       (int)i + 1);
        v[i] = lua_tostring(L, -1); /* anchored by the list */
        lua_pop(L, 1);
    }
    *count = n;
    return v;
}

/* core.sp_data(type, id, list, target, arguments_json, protocols[, max])
 * -> frame | nil, msg, details */
static int l_sp_data(lua_State *L)
{
    signalr_sp_data d;
    signalr_error e;
    size_t n = 0;
    cbuf *b;

    lua_settop(L, 7); /* the list's C array is pushed above the arguments */
    memset(&d, 0, sizeof d);
    d.type = (int)luaL_checkinteger(L, 1);
    d.id = luaL_optstring(L, 2, NULL);
    d.list = string_list(L, 3, &d.count);
    d.target = luaL_checkstring(L, 4);
    d.arguments = luaL_optlstring(L, 5, NULL, &d.arguments_len);
    d.protocols = (int)luaL_checkinteger(L, 6);
    d.max_size = (size_t)luaL_optinteger(L, 7, 0);
    b = new_cbuf(L);
    if (signalr_sp_encode_data(&d, &b->p, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_frame(L, b, n);
}

/* core.sp_op(type, id, group, text, excluded, ack_id[, ttl])
 * -> frame | nil, msg, details */
static int l_sp_op(lua_State *L)
{
    signalr_sp_op o;
    signalr_error e;
    size_t n = 0;
    cbuf *b;

    lua_settop(L, 7);
    memset(&o, 0, sizeof o);
    o.type = (int)luaL_checkinteger(L, 1);
    o.id = luaL_optstring(L, 2, NULL);
    o.group = luaL_optstring(L, 3, NULL);
    o.text = luaL_optstring(L, 4, NULL);
    o.list = string_list(L, 5, &o.count);
    o.ack_id = (long)luaL_optinteger(L, 6, 0);
    o.ttl = lua_isnoneornil(L, 7) ? SIGNALR_TTL_NONE
                                   : (long)luaL_checkinteger(L, 7);
    b = new_cbuf(L);
    if (signalr_sp_encode_op(&o, &b->p, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_frame(L, b, n);
}

/* core.sp_handshake(connection_type) -> frame */
static int l_sp_handshake(lua_State *L)
{
    signalr_error e;
    size_t n = 0;
    cbuf *b;
    int type = (int)luaL_checkinteger(L, 1);

    b = new_cbuf(L);
    if (signalr_sp_encode_handshake(type, &b->p, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_frame(L, b, n);
}

/* core.sp_ping([key, value, ...]) -> frame */
static int l_sp_ping(lua_State *L)
{
    int top = lua_gettop(L), i;
    const char *kv[2 * SIGNALR_SP_MAX_PING];
    signalr_error e;
    size_t n = 0;
    cbuf *b;

    if (top > 2 * SIGNALR_SP_MAX_PING || top % 2)
        return luaL_error(L, "signalr.core: a ping takes key/value pairs");
    for (i = 0; i < top; i++)
        kv[i] = luaL_checkstring(L, i + 1);
    b = new_cbuf(L);
    if (signalr_sp_encode_ping(kv, (size_t)top, &b->p, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_frame(L, b, n);
}

/* ===== the WebSocket ===== */

typedef struct {
    signalr_ws *ws;
} lws;

static lws *check_ws(lua_State *L)
{
    lws *w = luaL_checkudata(L, 1, WS_MT);

    if (!w->ws)
        luaL_error(L, "signalr.core: the WebSocket is freed");
    return w;
}

/* core.ws(host, path[, header_lines]) -> ws | nil, msg, details */
static int l_ws(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    const char *headers = luaL_optstring(L, 3, NULL);
    lws *w = lua_newuserdata(L, sizeof(*w));
    signalr_error e;

    w->ws = NULL;
    luaL_setmetatable(L, WS_MT);
    if (signalr_ws_new(&w->ws, host, path, headers, &e))
        return sr_lua_push_fail(L, &e);
    return 1;
}

static int l_ws_free(lua_State *L)
{
    lws *w = luaL_checkudata(L, 1, WS_MT);

    signalr_ws_free(w->ws);
    w->ws = NULL;
    return 0;
}

/* ws:send(frame) -> true | nil, msg, details */
static int l_ws_send(lua_State *L)
{
    lws *w = check_ws(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    signalr_error e;

    if (signalr_ws_send(w->ws, s, n, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:input(bytes) -> true | nil, msg, details */
static int l_ws_input(lua_State *L)
{
    lws *w = check_ws(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    signalr_error e;

    if (signalr_ws_input(w->ws, s, n, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:output() -> the bytes to write now ("" for none); ws:written(n) */
static int l_ws_output(lua_State *L)
{
    lws *w = check_ws(L);
    const char *p;
    size_t n;

    signalr_ws_output(w->ws, &p, &n);
    lua_pushlstring(L, p, n);
    return 1;
}

static int l_ws_written(lua_State *L)
{
    lws *w = check_ws(L);
    lua_Integer n = luaL_checkinteger(L, 2);

    if (n > 0)
        signalr_ws_written(w->ws, (size_t)n);
    return 0;
}

static int l_ws_taken(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)signalr_ws_taken(check_ws(L)->ws));
    return 1;
}

static int l_ws_unsent(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)signalr_ws_unsent(check_ws(L)->ws));
    return 1;
}

static const char *state_name(int s)
{
    switch (s) {
    case SIGNALR_WS_UPGRADING: return "upgrading";
    case SIGNALR_WS_OPEN: return "open";
    case SIGNALR_WS_CLOSING: return "closing";
    default: return "closed";
    }
}

/* ws:state() -> "upgrading" | "open" | "closing" | "closed", close code */
static int l_ws_state(lua_State *L)
{
    int code = 0, s = signalr_ws_state(check_ws(L)->ws, &code);

    lua_pushstring(L, state_name(s));
    lua_pushinteger(L, code);
    return 2;
}

/* ws:close([code[, reason]]) */
static int l_ws_close(lua_State *L)
{
    lws *w = check_ws(L);

    signalr_ws_close(w->ws, (int)luaL_optinteger(L, 2, 1000),
                     luaL_optstring(L, 3, NULL));
    return 0;
}

static void set_str(lua_State *L, const char *k, const char *s, size_t n)
{
    if (!s)
        return; /* nil stays absent */
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, k);
}

static void push_message(lua_State *L, const signalr_sp_message *m)
{
    size_t i;

    lua_createtable(L, 0, 6);
    lua_pushinteger(L, m->type);
    lua_setfield(L, -2, "type");
    switch (m->type) {
    case SIGNALR_SP_HANDSHAKE_RESPONSE:
        set_str(L, "error", m->str[0], m->len[0]);
        set_str(L, "connection_id", m->str[1], m->len[1]);
        break;
    case SIGNALR_SP_PING:
        lua_createtable(L, 0, (int)m->nping);
        for (i = m->nping; i > 0; i--) { /* the first of a key wins */
            lua_pushlstring(L, m->ping[2 * i - 2], m->ping_len[2 * i - 2]);
            lua_pushlstring(L, m->ping[2 * i - 1], m->ping_len[2 * i - 1]);
            lua_rawset(L, -3);
        }
        lua_setfield(L, -2, "values");
        break;
    case SIGNALR_SP_ACK:
        lua_pushinteger(L, (lua_Integer)m->num[0]);
        lua_setfield(L, -2, "ack_id");
        lua_pushinteger(L, (lua_Integer)m->num[1]);
        lua_setfield(L, -2, "status");
        set_str(L, "message", m->str[0], m->len[0]);
        break;
    case SIGNALR_SP_SERVICE_ERROR:
        set_str(L, "message", m->str[0], m->len[0]);
        break;
    case SIGNALR_SP_SERVICE_EVENT:
        lua_pushinteger(L, (lua_Integer)m->num[0]);
        lua_setfield(L, -2, "object_type");
        set_str(L, "id", m->str[0], m->len[0]);
        lua_pushinteger(L, (lua_Integer)m->num[1]);
        lua_setfield(L, -2, "kind");
        set_str(L, "message", m->str[1], m->len[1]);
        break;
    case SIGNALR_SP_ACCESS_KEY_RESPONSE:
        set_str(L, "kid", m->str[0], m->len[0]);
        set_str(L, "key", m->str[1], m->len[1]);
        set_str(L, "error_type", m->str[2], m->len[2]);
        set_str(L, "error_message", m->str[3], m->len[3]);
        break;
    case SIGNALR_SP_CLOSE_CONNECTION:
        set_str(L, "connection_id", m->str[0], m->len[0]);
        set_str(L, "error", m->str[1], m->len[1]);
        break;
    default:
        break;
    }
}

/* ws:messages([max_frame]) -> list[, msg, details]: every complete
 * message received; a malformed one is left out and counted in
 * list.malformed; a broken stream ends the list with its error. */
static int l_ws_messages(lua_State *L)
{
    lws *w = check_ws(L);
    size_t max = (size_t)luaL_optinteger(L, 2, 1 << 20);
    const char *p;
    size_t n, used, taken = 0;
    int count = 0, bad = 0;
    signalr_sp_message m;
    signalr_error e;

    signalr_ws_stream(w->ws, &p, &n);
    lua_newtable(L);
    for (;;) {
        int r = signalr_sp_next(p + taken, n - taken, max, &m, &used, &e);
        if (r == 0)
            break;
        if (r < 0 && used == 0) {
            signalr_ws_consume(w->ws, taken);
            lua_pushstring(L, e.msg);
            sr_lua_push_details(L, &e);
            return 3;
        }
        taken += used;
        if (r < 0) {
            bad++;
            continue;
        }
        push_message(L, &m);
        lua_rawseti(L, -2, ++count);
    }
    signalr_ws_consume(w->ws, taken);
    if (bad) {
        lua_pushinteger(L, bad);
        lua_setfield(L, -2, "malformed");
    }
    return 1;
}

static const luaL_Reg ws_methods[] = {
    {"send", l_ws_send},
    {"input", l_ws_input},
    {"output", l_ws_output},
    {"written", l_ws_written},
    {"unsent", l_ws_unsent},
    {"taken", l_ws_taken},
    {"state", l_ws_state},
    {"close", l_ws_close},
    {"messages", l_ws_messages},
    {"free", l_ws_free},
    {NULL, NULL}
};

/* ===== the libcurl socket ===== */

typedef struct {
    signalr_sock *s;
} lsock;

static lsock *check_sock(lua_State *L, int i)
{
    lsock *s = luaL_checkudata(L, i, SOCK_MT);

    if (!s->s)
        luaL_error(L, "signalr.core: the socket is closed");
    return s;
}

/* core.sock(url, connect_timeout_ms, insecure, ca_file) -> sock | nil, ... */
static int l_sock(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    signalr_sock_options o;
    lsock *s;
    signalr_error e;

    o.connect_timeout_ms = (long)luaL_optinteger(L, 2, 0);
    o.insecure = lua_toboolean(L, 3);
    o.ca_file = luaL_optstring(L, 4, NULL);
    s = lua_newuserdata(L, sizeof(*s));
    s->s = NULL;
    luaL_setmetatable(L, SOCK_MT);
    if (signalr_sock_open(&s->s, url, &o, &e))
        return sr_lua_push_fail(L, &e);
    return 1;
}

static int l_sock_close(lua_State *L)
{
    lsock *s = luaL_checkudata(L, 1, SOCK_MT);

    signalr_sock_free(s->s);
    s->s = NULL;
    return 0;
}

/* sock:connect() -> true (connected) | false (not yet) | nil, msg, details */
static int l_sock_connect(lua_State *L)
{
    signalr_error e;
    int r = signalr_sock_connect(check_sock(L, 1)->s, &e);

    if (r < 0)
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, r);
    return 1;
}

/* sock:fds() -> { {fd=, read=, write=}, ... } */
static int l_sock_fds(lua_State *L)
{
    int fds[4], ev[4], n = signalr_sock_fds(check_sock(L, 1)->s, fds, ev, 4);

    sr_lua_push_fds(L, fds, ev, n);
    return 1;
}

/* sock:timeout() -> seconds until the connect needs a look, or nil */
static int l_sock_timeout(lua_State *L)
{
    long t = signalr_sock_timeout(check_sock(L, 1)->s);

    if (t < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)t / 1000.0);
    return 1;
}

/* sock:pump(ws) -> true, want_write | false (closed) | nil, msg, details */
static int l_sock_pump(lua_State *L)
{
    lsock *s = check_sock(L, 1);
    lws *w = luaL_checkudata(L, 2, WS_MT);
    signalr_error e;
    int ww = 0, r;

    if (!w->ws)
        return luaL_error(L, "signalr.core: the WebSocket is freed");
    r = signalr_sock_pump(s->s, w->ws, &ww, &e);
    if (r < 0)
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, r);
    lua_pushboolean(L, ww);
    return 2;
}

/* sock:write(ws) -> true, want_write | nil, msg, details */
static int l_sock_write(lua_State *L)
{
    lsock *s = check_sock(L, 1);
    lws *w = luaL_checkudata(L, 2, WS_MT);
    signalr_error e;
    int ww = 0;

    if (!w->ws)
        return luaL_error(L, "signalr.core: the WebSocket is freed");
    if (signalr_sock_write(s->s, w->ws, &ww, &e) < 0)
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, ww);
    return 2;
}

static const luaL_Reg sock_methods[] = {
    {"connect", l_sock_connect},
    {"fds", l_sock_fds},
    {"timeout", l_sock_timeout},
    {"pump", l_sock_pump},
    {"write", l_sock_write},
    {"close", l_sock_close},
    {NULL, NULL}
};

/* core.guid() -> a random (version 4) GUID, "8-4-4-4-12" lower case:
 * the ids of server connections and servers. */
static int l_guid(lua_State *L)
{
    unsigned char b[16];
    char out[37];
    int i, j = 0;

    if (RAND_bytes(b, sizeof b) != 1)
        return luaL_error(L, "signalr.core: no random bytes");
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        static const char HEX[] = "0123456789abcdef";
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = HEX[b[i] >> 4];
        out[j++] = HEX[b[i] & 15];
    }
    lua_pushlstring(L, out, 36);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"sp_data", l_sp_data},
    {"sp_op", l_sp_op},
    {"sp_handshake", l_sp_handshake},
    {"sp_ping", l_sp_ping},
    {"ws", l_ws},
    {"sock", l_sock},
    {"guid", l_guid},
    {NULL, NULL}
};

static void metatable(lua_State *L, const char *name, const luaL_Reg *m,
                      lua_CFunction gc)
{
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, m, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

void sr_lua_open_persistent(lua_State *L)
{
    metatable(L, WS_MT, ws_methods, l_ws_free);
    metatable(L, SOCK_MT, sock_methods, l_sock_close);
    luaL_setfuncs(L, funcs, 0);
    lua_pushinteger(L, SIGNALR_SP_DEFAULT_MAX);
    lua_setfield(L, -2, "SP_DEFAULT_MAX");
}
