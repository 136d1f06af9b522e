/* svcproto.c - the service protocol of persistent mode: its writers
 * (core.sp_*), the messages its reader gives as Lua tables, and its
 * constants as core.sp.  No policy: the connection's life (handshake,
 * pings, acks, reconnects) is lua/signalr/persistent.lua's. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <string.h>

/* Frames are built into C memory held by a box (a raising push cannot
 * leak them) and copied into a Lua string.  The box is the functions'
 * upvalue, reused (sr_lua_take_box).  push_frame: the frame in b->a, n
 * bytes, pushed; b given back. */
static int push_frame(lua_State *L, box *b, size_t n)
{
    lua_pushlstring(L, b->a, n);
    sr_lua_give_box(b);
    return 1;
}

static int frame_fail(lua_State *L, box *b, const signalr_error *e)
{
    sr_lua_give_box(b);
    return sr_lua_push_fail(L, e);
}

#define TAKE_BOX(L) sr_lua_take_box((L), lua_upvalueindex(1))

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

/* What the ids of a data message of this type name (for the checks):
 * NULL for none; "group" checks a group name. */
static const char *id_kind(int type)
{
    switch (type) {
    case SIGNALR_SP_USER_DATA: return "user id";
    case SIGNALR_SP_GROUP_BROADCAST: return "group";
    default: return NULL;
    }
}

static const char *list_kind(int type)
{
    switch (type) {
    case SIGNALR_SP_MULTI_USER_DATA: return "user id";
    case SIGNALR_SP_MULTI_GROUP_BROADCAST: return "group";
    default: return "connection id"; /* to connections, or excluded */
    }
}

/* The string at idx (its whole length: a NUL byte in it is refused). */
static signalr_err check_name(lua_State *L, int idx, const char *kind,
                              signalr_error *e)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);

    if (!strcmp(kind, "group"))
        return signalr_validate_group(s, n, e);
    return signalr_validate_id(kind, s, n, e);
}

/* core.sp_data(type, id, list, target, arguments_json, protocols[, max[,
 * check]]) -> frame | nil, msg, details[, index]
 * check: the id and the list's items are checked first (as core.validate
 * does, by what the type names: user ids, groups, connection ids); a bad
 * one answers nil, msg, details and its index in the list (0: the id). */
static int l_sp_data(lua_State *L)
{
    signalr_sp_data d;
    signalr_error e;
    size_t n = 0, i;
    box *b;

    lua_settop(L, 8); /* the list's C array is pushed above the arguments */
    memset(&d, 0, sizeof d);
    d.type = (int)luaL_checkinteger(L, 1);
    d.id = luaL_optstring(L, 2, NULL);
    d.list = string_list(L, 3, &d.count);
    d.target = luaL_checkstring(L, 4);
    d.arguments = luaL_optlstring(L, 5, NULL, &d.arguments_len);
    d.protocols = (int)luaL_checkinteger(L, 6);
    d.max_size = (size_t)luaL_optinteger(L, 7, 0);
    if (lua_toboolean(L, 8)) {
        const char *kind = id_kind(d.type);

        if (d.id && kind && check_name(L, 2, kind, &e)) {
            sr_lua_push_fail(L, &e);
            lua_pushinteger(L, 0);
            return 4;
        }
        kind = list_kind(d.type);
        for (i = 0; i < d.count; i++) {
            signalr_err rc;

            lua_rawgeti(L, 3, (lua_Integer)i + 1); /* a string: checked */
            rc = check_name(L, -1, kind, &e);
            lua_pop(L, 1);
            if (rc) {
                sr_lua_push_fail(L, &e);
                lua_pushinteger(L, (lua_Integer)i + 1);
                return 4;
            }
        }
    }
    b = TAKE_BOX(L);
    if (signalr_sp_encode_data(&d, &b->a, &n, &e))
        return frame_fail(L, b, &e);
    return push_frame(L, b, n);
}

/* core.sp_send(type, id, target, args, protocols, max) -> frame | false:
 * core.sp_data's common case in one call, from the argument list itself
 * (json_encode_args's common case, encoded into the shared JSON buffer)
 * and an id checked as sp_data checks it; no list.  false for anything
 * else (a target or id that is not a string among it), a failure
 * included: the caller's general path (json_encode_args or json_encode,
 * then sp_data) does it or explains it. */
static int l_sp_send(lua_State *L)
{
    signalr_sp_data d;
    signalr_error e;
    size_t n = 0;
    void *held;
    box *b;
    signalr_err rc;

    lua_settop(L, 6);
    memset(&d, 0, sizeof d);
    d.type = (int)luaL_checkinteger(L, 1);
    /* strings only, no number made one: the hub calls this before its
     * argument checks, which then raise for what is not a string */
    if (lua_type(L, 3) != LUA_TSTRING
        || (lua_type(L, 2) != LUA_TSTRING && !lua_isnil(L, 2))) {
        lua_pushboolean(L, 0);
        return 1;
    }
    d.id = lua_tostring(L, 2);
    d.target = lua_tostring(L, 3);
    d.protocols = (int)luaL_checkinteger(L, 5);
    d.max_size = (size_t)luaL_optinteger(L, 6, 0);
    if (d.id) {
        const char *kind = id_kind(d.type);

        if (kind && check_name(L, 2, kind, &e)) {
            lua_pushboolean(L, 0);
            return 1;
        }
    }
    /* made here: checked UTF-8 JSON, and its MessagePack beside it */
    d.arguments = sr_lua_json_args(L, 4, lua_upvalueindex(2),
                                   &d.arguments_len,
                                   (d.protocols & SIGNALR_SP_MESSAGEPACK)
                                       ? &d.arguments_mp : NULL,
                                   &d.arguments_mp_len, &held);
    d.arguments_checked = 1;
    if (!d.arguments) {
        lua_pushboolean(L, 0);
        return 1;
    }
    b = TAKE_BOX(L);
    rc = signalr_sp_encode_data(&d, &b->a, &n, &e);
    sr_lua_json_args_done(held);
    if (rc) {
        sr_lua_give_box(b);
        lua_pushboolean(L, 0);
        return 1;
    }
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
    b = TAKE_BOX(L);
    if (signalr_sp_encode_op(&o, &b->a, &n, &e))
        return frame_fail(L, b, &e);
    return push_frame(L, b, n);
}

/* core.sp_handshake(connection_type) -> frame */
static int l_sp_handshake(lua_State *L)
{
    signalr_error e;
    size_t n = 0;
    box *b;
    int type = (int)luaL_checkinteger(L, 1);

    b = TAKE_BOX(L);
    if (signalr_sp_encode_handshake(type, &b->a, &n, &e))
        return frame_fail(L, b, &e);
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
    b = TAKE_BOX(L);
    if (signalr_sp_encode_ping(kv, (size_t)top, &b->a, &n, &e))
        return frame_fail(L, b, &e);
    return push_frame(L, b, n);
}

static void set_str(lua_State *L, const char *k, const char *s, size_t n)
{
    if (!s)
        return; /* nil stays absent */
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, k);
}

/* OpenConnection's claims as a list of { type = t, value = v } in the
 * order sent, duplicates kept (a nil value leaves value absent).  The
 * core checked the map when it read the message. */
static void push_claims(lua_State *L, const char *map, size_t len)
{
    signalr_sp_pairs it;
    const char *k, *v;
    size_t kl, vl;
    int n = 0;

    lua_newtable(L);
    signalr_sp_pairs_init(&it, map, len);
    while (signalr_sp_pairs_next(&it, &k, &kl, &v, &vl) == 1) {
        lua_createtable(L, 0, 2);
        lua_pushlstring(L, k, kl);
        lua_setfield(L, -2, "type");
        set_str(L, "value", v, vl);
        lua_rawseti(L, -2, ++n);
    }
}

/* Headers as { name = { value, ... } }, names as sent (not folded); a
 * name without values gets an empty list; nil values are left out. */
static void push_headers(lua_State *L, const char *map, size_t len)
{
    signalr_sp_pairs it;
    const char *k, *v;
    size_t kl, vl;

    lua_newtable(L);
    signalr_sp_pairs_init(&it, map, len);
    while (signalr_sp_pairs_next(&it, &k, &kl, &v, &vl) == 1) {
        lua_pushlstring(L, k, kl);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) { /* the first pair of this name */
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, -5);
        }
        if (v) {
            lua_pushlstring(L, v, vl);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
        lua_pop(L, 2);
    }
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
    case SIGNALR_SP_OPEN_CONNECTION:
        set_str(L, "connection_id", m->str[0], m->len[0]);
        set_str(L, "query", m->str[1], m->len[1]);
        set_str(L, "protocol", m->str[2], m->len[2]);
        push_claims(L, m->map[0], m->map_len[0]);
        lua_setfield(L, -2, "claims");
        push_headers(L, m->map[1], m->map_len[1]);
        lua_setfield(L, -2, "headers");
        break;
    case SIGNALR_SP_CLOSE_CONNECTION:
        set_str(L, "connection_id", m->str[0], m->len[0]);
        set_str(L, "error", m->str[1], m->len[1]);
        push_headers(L, m->map[1], m->map_len[1]);
        lua_setfield(L, -2, "headers");
        break;
    case SIGNALR_SP_CONNECTION_DATA:
        set_str(L, "connection_id", m->str[0], m->len[0]);
        /* a nil payload is an empty one */
        lua_pushlstring(L, m->str[1] ? m->str[1] : "", m->len[1]);
        lua_setfield(L, -2, "payload");
        lua_pushinteger(L, (lua_Integer)m->num[0]);
        lua_setfield(L, -2, "data_type");
        lua_pushboolean(L, m->num[1] != 0);
        lua_setfield(L, -2, "partial");
        break;
    case SIGNALR_SP_CONNECTION_RECONNECT:
        set_str(L, "connection_id", m->str[0], m->len[0]);
        break;
    default:
        break;
    }
}

int sr_lua_push_sp_messages(lua_State *L, const char *p, size_t n,
                            size_t max, size_t *taken)
{
    size_t used;
    int count = 0, bad = 0;
    signalr_sp_message m;
    signalr_error e;

    *taken = 0;
    lua_newtable(L);
    for (;;) {
        int r = signalr_sp_next(p + *taken, n - *taken, max, &m, &used, &e);
        if (r == 0)
            break;
        if (r < 0 && used == 0) { /* the stream is broken */
            if (bad) {
                lua_pushinteger(L, bad);
                lua_setfield(L, -2, "malformed");
            }
            lua_pushstring(L, e.msg);
            sr_lua_push_details(L, &e);
            return 2;
        }
        *taken += used;
        if (r < 0) {
            bad++;
            continue;
        }
        sr_lua_push_sp_message(L, &m);
        lua_rawseti(L, -2, ++count);
    }
    if (bad) {
        lua_pushinteger(L, bad);
        lua_setfield(L, -2, "malformed");
    }
    return 0;
}

/* core.sp_read(bytes[, max_frame]) -> list, used[, msg, details]: the
 * messages of the complete frames at the start of bytes, as ws:messages()
 * gives them (for frames that came some other way than core.ws), and
 * how many bytes they took (the rest starts a frame not complete yet). */
static int l_sp_read(lua_State *L)
{
    size_t n, taken;
    const char *p = luaL_checklstring(L, 1, &n);
    size_t max = (size_t)luaL_optinteger(L, 2, 1 << 20);
    int extra = sr_lua_push_sp_messages(L, p, n, max, &taken);

    lua_pushinteger(L, (lua_Integer)taken);
    if (extra) /* list, msg, details, used -> list, used, msg, details */
        lua_insert(L, -3);
    return 2 + extra;
}

/* core.sp_connection_data(connection_id, payload[, data_type]) -> frame
 * | nil, msg, details: a hub server's bytes for one client (data_type:
 * core.sp.DATA_*, 0 or nil untagged). */
static int l_sp_connection_data(lua_State *L)
{
    size_t idlen, plen, n = 0;
    const char *id = luaL_checklstring(L, 1, &idlen);
    const char *payload = luaL_checklstring(L, 2, &plen);
    lua_Integer type = luaL_optinteger(L, 3, 0);
    signalr_error e;
    box *b;

    if (strlen(id) != idlen)
        return sr_lua_nul_fail(L, "connection_id");
    if (type < 0 || type > 0x7fffffff)
        return sr_lua_fail_msg(L, SIGNALR_EINVAL, "data_type must be "
                               "0..2147483647");
    b = TAKE_BOX(L);
    if (signalr_sp_encode_connection_data(id, payload, plen, (int)type,
                                          &b->a, &n, &e))
        return frame_fail(L, b, &e);
    return push_frame(L, b, n);
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
    {"sp_send", l_sp_send},
    {"sp_op", l_sp_op},
    {"sp_handshake", l_sp_handshake},
    {"sp_ping", l_sp_ping},
    {"sp_read", l_sp_read},
    {"sp_connection_data", l_sp_connection_data},
    {NULL, NULL}
};

void sr_lua_open_svcproto(lua_State *L)
{
    size_t i, n = sizeof(SP_CONSTANTS) / sizeof(*SP_CONSTANTS);

    sr_lua_new_box(L); /* the functions' reused box */
    sr_lua_push_json_buffer(L); /* and the JSON encoder's (sp_send) */
    luaL_setfuncs(L, funcs, 2);
    lua_createtable(L, 0, (int)n);
    for (i = 0; i < n; i++) {
        lua_pushinteger(L, SP_CONSTANTS[i].value);
        lua_setfield(L, -2, SP_CONSTANTS[i].name);
    }
    lua_setfield(L, -2, "sp");
    lua_pushinteger(L, SIGNALR_SP_DEFAULT_MAX);
    lua_setfield(L, -2, "SP_DEFAULT_MAX");
}
