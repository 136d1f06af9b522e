/* sock.c - the socket userdata (`core.sock`) of persistent mode:
 * libcurl's connect-only socket (TCP, TLS, proxies) that moves a
 * WebSocket's bytes. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#define SOCK_MT "signalr.sock"

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
    o.proxy = luaL_optstring(L, 5, NULL);
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
    signalr_ws *ws = sr_lua_check_ws(L, 2);
    signalr_error e;
    int ww = 0, r;

    r = signalr_sock_pump(s->s, ws, &ww, &e);
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
    signalr_ws *ws = sr_lua_check_ws(L, 2);
    signalr_error e;
    int ww = 0;

    if (signalr_sock_write(s->s, ws, &ww, &e) < 0)
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

void sr_lua_open_sock(lua_State *L)
{
    sr_lua_metatable(L, SOCK_MT, sock_methods, l_sock_close);
    lua_pushcfunction(L, l_sock);
    lua_setfield(L, -2, "sock");
}
