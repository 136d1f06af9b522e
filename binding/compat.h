/* compat.h - the few Lua 5.2+ C API calls the binding uses, for Lua 5.1
 * (LuaJIT already has them), so the binding is written once against the
 * 5.3-style API. */
#ifndef SIGNALR_LUA_COMPAT_H
#define SIGNALR_LUA_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib)
/* inline: the binding's files that use neither get no unused warning */
static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name; l++) {
        int i;

        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

static inline void luaL_setmetatable(lua_State *L, const char *tname)
{
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}

#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs(L, l, 0))
#endif

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen(L, (i))
#endif

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, (size))
#endif

/* A full userdata's one user value, a table here (Lua 5.1 and LuaJIT
 * keep it as the userdata's environment, which must be a table; 5.4
 * needs the userdata made with at least one user value). */
#if LUA_VERSION_NUM < 502
#define sr_lua_setuv(L, i) lua_setfenv(L, (i))
#define sr_lua_getuv(L, i) lua_getfenv(L, (i))
#else
#define sr_lua_setuv(L, i) ((void)lua_setuservalue(L, (i)))
#define sr_lua_getuv(L, i) ((void)lua_getuservalue(L, (i)))
#endif

/* Before 5.3 every number is a double: none is an integer, and a 64-bit
 * integer is pushed as the nearest double (exact up to 2^53). */
#if LUA_VERSION_NUM < 503
#define lua_isinteger(L, i) 0
#define sr_lua_pushint64(L, v) lua_pushnumber(L, (lua_Number)(v))
#else
#define sr_lua_pushint64(L, v) lua_pushinteger(L, (lua_Integer)(v))
#endif

#endif
