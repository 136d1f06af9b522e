/* ws.c - the WebSocket userdata (`core.ws`) of persistent mode: the
 * client side of RFC 6455 without I/O (bytes in, bytes out) and the
 * service protocol's messages read from it. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#define WS_MT "signalr.ws"

typedef struct {
    signalr_ws *ws;
} lws;

static lws *check_ws(lua_State *L, int i)
{
    lws *w = luaL_checkudata(L, i, WS_MT);

    if (!w->ws)
        luaL_error(L, "signalr.core: the WebSocket is freed");
    return w;
}

signalr_ws *sr_lua_check_ws(lua_State *L, int i)
{
    return check_ws(L, i)->ws;
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
    lws *w = check_ws(L, 1);
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
    lws *w = check_ws(L, 1);
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
    lws *w = check_ws(L, 1);
    const char *p;
    size_t n;

    signalr_ws_output(w->ws, &p, &n);
    lua_pushlstring(L, p, n);
    return 1;
}

static int l_ws_written(lua_State *L)
{
    lws *w = check_ws(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);

    if (n > 0)
        signalr_ws_written(w->ws, (size_t)n);
    return 0;
}

static int l_ws_taken(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)signalr_ws_taken(check_ws(L, 1)->ws));
    return 1;
}

static int l_ws_unsent(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)signalr_ws_unsent(check_ws(L, 1)->ws));
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
    int code = 0, s = signalr_ws_state(check_ws(L, 1)->ws, &code);

    lua_pushstring(L, state_name(s));
    lua_pushinteger(L, code);
    return 2;
}

/* ws:close([code[, reason]]) */
static int l_ws_close(lua_State *L)
{
    lws *w = check_ws(L, 1);

    signalr_ws_close(w->ws, (int)luaL_optinteger(L, 2, 1000),
                     luaL_optstring(L, 3, NULL));
    return 0;
}

/* ws:messages([max_frame]) -> list[, msg, details]: every complete
 * message received; a malformed one is left out and counted in
 * list.malformed; a broken stream ends the list with its error. */
static int l_ws_messages(lua_State *L)
{
    lws *w = check_ws(L, 1);
    size_t max = (size_t)luaL_optinteger(L, 2, 1 << 20);
    const char *p;
    size_t n, taken;
    int extra;

    signalr_ws_stream(w->ws, &p, &n);
    extra = sr_lua_push_sp_messages(L, p, n, max, &taken);
    signalr_ws_consume(w->ws, taken);
    return 1 + extra;
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

void sr_lua_open_ws(lua_State *L)
{
    sr_lua_metatable(L, WS_MT, ws_methods, l_ws_free);
    lua_pushcfunction(L, l_ws);
    lua_setfield(L, -2, "ws");
}
