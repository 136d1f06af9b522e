/* pollset.c - the pollset userdata (`core.pollset`): one descriptor over
 * several clients' and connections' (epoll). */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#define POLLSET_MT "signalr.pollset"

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
        return sr_lua_push_fail(L, &e);
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
        return sr_lua_push_fail(L, &e);
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
    return watch_fd(L, (lua_toboolean(L, 3) ? 1 : 0) |
                           (lua_toboolean(L, 4) ? 2 : 0));
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
        return sr_lua_push_fail(L, &e);
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

void sr_lua_open_pollset(lua_State *L)
{
    sr_lua_metatable(L, POLLSET_MT, pollset_methods, l_pollset_close);
    lua_pushcfunction(L, l_pollset);
    lua_setfield(L, -2, "pollset");
}
