/* helpers.c - what every part of `signalr.core` uses: the pushers of
 * failures (nil, message, details) and descriptor lists, the __gc box
 * that holds C memory while results are pushed, argument checks, and the
 * registration of a userdata's metatable. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <string.h>

void sr_lua_push_details(lua_State *L, const signalr_error *e)
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
int sr_lua_push_fail(lua_State *L, const signalr_error *e)
{
    lua_pushnil(L);
    lua_pushstring(L, e->msg[0] ? e->msg : signalr_strerror(e->code));
    sr_lua_push_details(L, e);
    return 3;
}

int sr_lua_fail_msg(lua_State *L, signalr_err code, const char *msg)
{
    signalr_error e;

    memset(&e, 0, sizeof(e));
    e.code = code;
    strncpy(e.msg, msg, sizeof(e.msg) - 1);
    return sr_lua_push_fail(L, &e);
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

box *sr_lua_new_box(lua_State *L)
{
    box *b = lua_newuserdatauv(L, sizeof(box), 0);

    memset(b, 0, sizeof(*b));
    luaL_setmetatable(L, BOX_MT);
    return b;
}

box *sr_lua_take_box(lua_State *L, int idx)
{
    box *b = lua_touserdata(L, idx);

    if (b->busy)
        return sr_lua_new_box(L);
    b->busy = 1;
    return b;
}

void sr_lua_give_box(box *b)
{
    signalr_request_clear(&b->req);
    signalr_free(b->a);
    signalr_free(b->b);
    b->a = b->b = NULL;
    b->busy = 0;
}

signalr_op sr_lua_check_op(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    signalr_op op;

    if (signalr_op_find(name, &op))
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown operation '%s'",
                                              name));
    return op;
}

/* Optional string field; raises on a wrong type; *nul set on a NUL byte. */
const char *sr_lua_opt_field(lua_State *L, int t, const char *k,
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

int sr_lua_nul_fail(lua_State *L, const char *field)
{
    char msg[96];

    strcpy(msg, field);
    strcat(msg, " contains a NUL byte");
    return sr_lua_fail_msg(L, SIGNALR_EINVAL, msg);
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

void sr_lua_metatable(lua_State *L, const char *name, const luaL_Reg *m,
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

void sr_lua_open_helpers(lua_State *L)
{
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
