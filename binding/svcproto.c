/* svcproto.c - the service protocol of persistent mode: its writers
 * (core.sp_*), the messages its reader gives as Lua tables, and its
 * constants as core.sp.  No policy: the connection's life (handshake,
 * pings, acks, reconnects) is lua/signalr/persistent.lua's. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <string.h>

/* Frames are built into C memory held by a box (a raising push cannot
 * leak them) and copied into a Lua string. */
static int push_frame(lua_State *L, box *b, size_t n)
{
    lua_pushlstring(L, b->a, n);
    signalr_free(b->a);
    b->a = NULL;
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
    box *b;

    lua_settop(L, 7); /* the list's C array is pushed above the arguments */
    memset(&d, 0, sizeof d);
    d.type = (int)luaL_checkinteger(L, 1);
    d.id = luaL_optstring(L, 2, NULL);
    d.list = string_list(L, 3, &d.count);
    d.target = luaL_checkstring(L, 4);
    d.arguments = luaL_optlstring(L, 5, NULL, &d.arguments_len);
    d.protocols = (int)luaL_checkinteger(L, 6);
    d.max_size = (size_t)luaL_optinteger(L, 7, 0);
    b = sr_lua_new_box(L);
    if (signalr_sp_encode_data(&d, &b->a, &n, &e))
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
    box *b;

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
    b = sr_lua_new_box(L);
    if (signalr_sp_encode_op(&o, &b->a, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_frame(L, b, n);
}

/* core.sp_handshake(connection_type) -> frame */
static int l_sp_handshake(lua_State *L)
{
    signalr_error e;
    size_t n = 0;
    box *b;
    int type = (int)luaL_checkinteger(L, 1);

    b = sr_lua_new_box(L);
    if (signalr_sp_encode_handshake(type, &b->a, &n, &e))
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
    box *b;

    if (top > 2 * SIGNALR_SP_MAX_PING || top % 2)
        return luaL_error(L, "signalr.core: a ping takes key/value pairs");
    for (i = 0; i < top; i++)
        kv[i] = luaL_checkstring(L, i + 1);
    b = sr_lua_new_box(L);
    if (signalr_sp_encode_ping(kv, (size_t)top, &b->a, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_frame(L, b, n);
}

static void set_str(lua_State *L, const char *k, const char *s, size_t n)
{
    if (!s)
        return; /* nil stays absent */
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, k);
}

void sr_lua_push_sp_message(lua_State *L, const signalr_sp_message *m)
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

/* core.sp.<NAME> is SIGNALR_SP_<NAME>: the message types, connection
 * types, protocol bits and limits, named in Lua instead of repeated as
 * numbers. */
#define SP(name) {#name, (lua_Integer)(SIGNALR_SP_##name)}
static const struct {
    const char *name;
    lua_Integer value;
} SP_CONSTANTS[] = {
    /* message types */
    SP(HANDSHAKE_REQUEST), SP(HANDSHAKE_RESPONSE), SP(PING),
    SP(OPEN_CONNECTION), SP(CLOSE_CONNECTION), SP(CONNECTION_DATA),
    SP(MULTI_CONNECTION_DATA), SP(USER_DATA), SP(MULTI_USER_DATA),
    SP(BROADCAST), SP(GROUP_BROADCAST), SP(MULTI_GROUP_BROADCAST),
    SP(SERVICE_ERROR), SP(JOIN_GROUP_WITH_ACK), SP(LEAVE_GROUP_WITH_ACK),
    SP(ACK), SP(CHECK_USER_IN_GROUP), SP(SERVICE_EVENT),
    SP(CHECK_GROUP_EXISTENCE), SP(CHECK_CONNECTION_EXISTENCE),
    SP(CHECK_USER_EXISTENCE), SP(USER_JOIN_GROUP_WITH_ACK),
    SP(USER_LEAVE_GROUP_WITH_ACK), SP(ACCESS_KEY_REQUEST),
    SP(ACCESS_KEY_RESPONSE), SP(CLOSE_CONNECTIONS),
    SP(CLOSE_USER_CONNECTIONS), SP(CLOSE_GROUP_CONNECTIONS),
    SP(CONNECTION_RECONNECT),
    /* connection types, payload kinds, protocols, limits */
    SP(DEFAULT_CONNECTION), SP(WEAK_CONNECTION), SP(DATA_HANDSHAKE),
    SP(DATA_INVOCATION), SP(DATA_OTHER), SP(JSON), SP(MESSAGEPACK),
    SP(DEFAULT_MAX), SP(MAX_PING)
};
#undef SP

static const luaL_Reg funcs[] = {
    {"sp_data", l_sp_data},
    {"sp_op", l_sp_op},
    {"sp_handshake", l_sp_handshake},
    {"sp_ping", l_sp_ping},
    {NULL, NULL}
};

void sr_lua_open_svcproto(lua_State *L)
{
    size_t i, n = sizeof(SP_CONSTANTS) / sizeof(*SP_CONSTANTS);

    luaL_setfuncs(L, funcs, 0);
    lua_createtable(L, 0, (int)n);
    for (i = 0; i < n; i++) {
        lua_pushinteger(L, SP_CONSTANTS[i].value);
        lua_setfield(L, -2, SP_CONSTANTS[i].name);
    }
    lua_setfield(L, -2, "sp");
    lua_pushinteger(L, SIGNALR_SP_DEFAULT_MAX);
    lua_setfield(L, -2, "SP_DEFAULT_MAX");
}
