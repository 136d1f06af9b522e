/* hubproto.c - the SignalR hub protocol for a hub server: the reader of
 * one client's bytes (core.hub_reader), the writers of what a hub sends
 * (core.hub_*), and the constants as core.hub.  The core parses and
 * writes; this file only moves values.  No policy: what a hub answers is
 * the Lua layer's.
 *
 * Messages are tables { type = n, ... } with the core's fields in
 * snake_case; values (arguments, item, result, stream_ids) stay JSON text
 * (decode them with core.json_decode when needed); headers, a JSON
 * object of strings, come decoded as a table. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <string.h>

#define HUB_READER_MT "signalr.hub_reader"

typedef struct {
    signalr_hub_reader *r;
} lhub;

static lhub *check_reader(lua_State *L)
{
    lhub *h = luaL_checkudata(L, 1, HUB_READER_MT);

    if (!h->r)
        luaL_error(L, "signalr.core: the hub reader is freed");
    return h;
}

/* core.hub_reader([protocols[, max_message]]) -> reader | nil, msg,
 * details.  protocols: what the handshake may choose (core.hub.JSON |
 * core.hub.MESSAGEPACK; 0 or nil: both); max_message: the largest
 * message, framing included (0 or nil: core.hub.DEFAULT_MAX). */
static int l_hub_reader(lua_State *L)
{
    lua_Integer protocols = luaL_optinteger(L, 1, 0);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    lhub *h;
    signalr_error e;

    luaL_argcheck(L, protocols >= 0 && protocols <= 0x7fffffff, 1,
                  "protocols must be 0..2147483647");
    luaL_argcheck(L, max >= 0, 2, "max_message must be >= 0");
    h = lua_newuserdatauv(L, sizeof *h, 0);
    h->r = NULL;
    luaL_setmetatable(L, HUB_READER_MT);
    if (signalr_hub_reader_new(&h->r, (int)protocols, (size_t)max, &e))
        return sr_lua_push_fail(L, &e);
    return 1;
}

static int l_hub_free(lua_State *L)
{
    lhub *h = luaL_checkudata(L, 1, HUB_READER_MT);

    signalr_hub_reader_free(h->r);
    h->r = NULL;
    return 0;
}

static void set_lstr(lua_State *L, const char *k, const char *s, size_t n)
{
    if (!s)
        return; /* absent stays absent */
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, k);
}

/* The message as a table (its pointers are valid until the reader's
 * next call, so every one is copied now). */
static void push_message(lua_State *L, const signalr_hub_message *m)
{
    char msg[160];

    lua_createtable(L, 0, 6);
    lua_pushinteger(L, m->type);
    lua_setfield(L, -2, "type");
    switch (m->type) {
    case SIGNALR_HUB_HANDSHAKE:
        set_lstr(L, "protocol", m->protocol, m->protocol_len);
        lua_pushinteger(L, m->version);
        lua_setfield(L, -2, "version");
        return;
    case SIGNALR_HUB_CLOSE:
        set_lstr(L, "error", m->error, m->error_len);
        lua_pushboolean(L, m->allow_reconnect);
        lua_setfield(L, -2, "allow_reconnect");
        return;
    case SIGNALR_HUB_ACK:
    case SIGNALR_HUB_SEQUENCE:
        sr_lua_pushint64(L, m->sequence_id);
        lua_setfield(L, -2, "sequence_id");
        return;
    default:
        break;
    }
    set_lstr(L, "invocation_id", m->invocation_id, m->invocation_id_len);
    set_lstr(L, "target", m->target, m->target_len);
    set_lstr(L, "arguments", m->arguments, m->arguments_len);
    set_lstr(L, "stream_ids", m->stream_ids, m->stream_ids_len);
    set_lstr(L, "item", m->item, m->item_len);
    set_lstr(L, "result", m->result, m->result_len);
    set_lstr(L, "error", m->error, m->error_len);
    /* the core gives headers as a JSON object of strings: it cannot fail
     * to decode but for memory, and then the text is kept */
    if (m->headers) {
        if (sr_lua_json_decode(L, m->headers, m->headers_len, msg))
            lua_pushlstring(L, m->headers, m->headers_len);
        lua_setfield(L, -2, "headers");
    }
}

/* reader:feed(bytes) -> list | nil, msg, details
 * Every message the bytes complete, in order (the reader keeps the start
 * of one not complete yet; an empty list when none).  On an error
 * (EPROTOCOL, ETOOBIG; the reader is stopped, later calls get EINVAL)
 * details.messages lists the messages read before it.  One table per
 * message and one list per call: the list costs less than a call per
 * message, and the core's pointers are only valid until its next call,
 * so they are copied out as they come. */
static int l_hub_feed(lua_State *L)
{
    lhub *h = check_reader(L);
    size_t len, off = 0, used;
    const char *d = luaL_checklstring(L, 2, &len);
    signalr_hub_message m;
    signalr_error e;
    int count = 0;

    lua_settop(L, 2);
    lua_newtable(L); /* 3: the list */
    for (;;) {
        int got = signalr_hub_next(h->r, d + off, len - off, &used, &m,
                                   &e);
        off += used;
        if (got == 0)
            return 1;
        if (got < 0) {
            sr_lua_push_fail(L, &e);
            lua_pushvalue(L, 3);
            lua_setfield(L, -2, "messages");
            return 3;
        }
        push_message(L, &m);
        lua_rawseti(L, 3, ++count);
    }
}

/* reader:set_protocol(protocol) -> true | nil, msg, details: read
 * messages in protocol from now on, without a handshake (a client whose
 * handshake happened elsewhere); EINVAL once bytes were read. */
static int l_hub_set_protocol(lua_State *L)
{
    lhub *h = check_reader(L);
    lua_Integer p = luaL_checkinteger(L, 2);
    signalr_error e;

    luaL_argcheck(L, p >= 0 && p <= 0x7fffffff, 2, "unknown protocol");
    if (signalr_hub_reader_set_protocol(h->r, (int)p, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* reader:protocol() -> core.hub.JSON or MESSAGEPACK once chosen, else 0 */
static int l_hub_protocol(lua_State *L)
{
    lua_pushinteger(L, signalr_hub_reader_protocol(check_reader(L)->r));
    return 1;
}

/* ===== writers: each returns the framed bytes as a string, or nil, msg,
 * details (EINVAL: an unknown protocol, a string that is not UTF-8 or
 * holds a NUL byte, a JSON text that is not one value) ===== */

/* The message built into b->a (a box: a raising push cannot leak it). */
static int push_written(lua_State *L, box *b, size_t n)
{
    lua_pushlstring(L, b->a, n);
    signalr_free(b->a);
    b->a = NULL;
    return 1;
}

/* An optional string argument without NUL bytes; *nul set to name when
 * it has one. */
static const char *opt_text(lua_State *L, int i, const char *name,
                            const char **nul)
{
    size_t n;
    const char *s = luaL_optlstring(L, i, NULL, &n);

    if (s && strlen(s) != n && !*nul)
        *nul = name;
    return s;
}

static int check_protocol(lua_State *L, int i)
{
    lua_Integer p = luaL_checkinteger(L, i);

    luaL_argcheck(L, p >= 0 && p <= 0x7fffffff, i, "unknown protocol");
    return (int)p;
}

/* core.hub_handshake_response([error]) -> bytes: {} or {"error":...},
 * then 0x1E (JSON whatever the protocol) */
static int l_hub_handshake_response(lua_State *L)
{
    const char *nul = NULL;
    const char *error = opt_text(L, 1, "error", &nul);
    signalr_error e;
    size_t n = 0;
    box *b;

    if (nul)
        return sr_lua_nul_fail(L, nul);
    b = sr_lua_new_box(L);
    if (signalr_hub_encode_handshake_response(error, &b->a, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_written(L, b, n);
}

/* core.hub_completion(protocol, invocation_id, result_json, error) ->
 * bytes: an error completion when error is given, else a result when
 * result_json is ("null" is a result), else void. */
static int l_hub_completion(lua_State *L)
{
    const char *nul = NULL;
    int protocol = check_protocol(L, 1);
    const char *id = opt_text(L, 2, "invocation_id", &nul);
    size_t rlen = 0, n = 0;
    const char *result = luaL_optlstring(L, 3, NULL, &rlen);
    const char *error = opt_text(L, 4, "error", &nul);
    signalr_error e;
    box *b;

    luaL_checkstring(L, 2);
    if (nul)
        return sr_lua_nul_fail(L, nul);
    b = sr_lua_new_box(L);
    if (signalr_hub_encode_completion(protocol, id, result, rlen, error,
                                      &b->a, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_written(L, b, n);
}

/* core.hub_stream_item(protocol, invocation_id, item_json) -> bytes */
static int l_hub_stream_item(lua_State *L)
{
    const char *nul = NULL;
    int protocol = check_protocol(L, 1);
    const char *id = opt_text(L, 2, "invocation_id", &nul);
    size_t ilen = 0, n = 0;
    const char *item = luaL_checklstring(L, 3, &ilen);
    signalr_error e;
    box *b;

    luaL_checkstring(L, 2);
    if (nul)
        return sr_lua_nul_fail(L, nul);
    b = sr_lua_new_box(L);
    if (signalr_hub_encode_stream_item(protocol, id, item, ilen, &b->a, &n,
                                       &e))
        return sr_lua_push_fail(L, &e);
    return push_written(L, b, n);
}

/* core.hub_invocation(protocol, invocation_id, target, args_json) ->
 * bytes: invocation_id nil or "" when no answer is wanted; args_json a
 * JSON array (nil: []). */
static int l_hub_invocation(lua_State *L)
{
    const char *nul = NULL;
    int protocol = check_protocol(L, 1);
    const char *id = opt_text(L, 2, "invocation_id", &nul);
    const char *target = opt_text(L, 3, "target", &nul);
    size_t alen = 0, n = 0;
    const char *args = luaL_optlstring(L, 4, NULL, &alen);
    signalr_error e;
    box *b;

    luaL_checkstring(L, 3);
    if (nul)
        return sr_lua_nul_fail(L, nul);
    b = sr_lua_new_box(L);
    if (signalr_hub_encode_invocation(protocol, id, target, args, alen,
                                      &b->a, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_written(L, b, n);
}

/* core.hub_ping(protocol) -> bytes */
static int l_hub_ping(lua_State *L)
{
    int protocol = check_protocol(L, 1);
    signalr_error e;
    size_t n = 0;
    box *b = sr_lua_new_box(L);

    if (signalr_hub_encode_ping(protocol, &b->a, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_written(L, b, n);
}

/* core.hub_close(protocol[, error[, allow_reconnect]]) -> bytes */
static int l_hub_close(lua_State *L)
{
    const char *nul = NULL;
    int protocol = check_protocol(L, 1);
    const char *error = opt_text(L, 2, "error", &nul);
    int allow = lua_toboolean(L, 3);
    signalr_error e;
    size_t n = 0;
    box *b;

    if (nul)
        return sr_lua_nul_fail(L, nul);
    b = sr_lua_new_box(L);
    if (signalr_hub_encode_close(protocol, error, allow, &b->a, &n, &e))
        return sr_lua_push_fail(L, &e);
    return push_written(L, b, n);
}

/* core.hub.<NAME> is SIGNALR_HUB_<NAME>. */
#define HUB(name) {#name, (lua_Integer)(SIGNALR_HUB_##name)}
static const struct {
    const char *name;
    lua_Integer value;
} HUB_CONSTANTS[] = {
    HUB(HANDSHAKE), HUB(INVOCATION), HUB(STREAM_ITEM), HUB(COMPLETION),
    HUB(STREAM_INVOCATION), HUB(CANCEL_INVOCATION), HUB(PING), HUB(CLOSE),
    HUB(ACK), HUB(SEQUENCE), HUB(JSON), HUB(MESSAGEPACK), HUB(DEFAULT_MAX),
    HUB(MAX_DEPTH)
};
#undef HUB

static const luaL_Reg reader_methods[] = {
    {"feed", l_hub_feed},
    {"set_protocol", l_hub_set_protocol},
    {"protocol", l_hub_protocol},
    {"free", l_hub_free},
    {NULL, NULL}
};

static const luaL_Reg funcs[] = {
    {"hub_reader", l_hub_reader},
    {"hub_handshake_response", l_hub_handshake_response},
    {"hub_completion", l_hub_completion},
    {"hub_stream_item", l_hub_stream_item},
    {"hub_invocation", l_hub_invocation},
    {"hub_ping", l_hub_ping},
    {"hub_close", l_hub_close},
    {NULL, NULL}
};

void sr_lua_open_hubproto(lua_State *L)
{
    size_t i, n = sizeof(HUB_CONSTANTS) / sizeof(*HUB_CONSTANTS);

    sr_lua_metatable(L, HUB_READER_MT, reader_methods, l_hub_free);
    luaL_getmetatable(L, HUB_READER_MT);
    lua_pushcfunction(L, l_hub_free);
    lua_setfield(L, -2, "__close"); /* Lua 5.4's to-be-closed variables */
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
    lua_createtable(L, 0, (int)n);
    for (i = 0; i < n; i++) {
        lua_pushinteger(L, HUB_CONSTANTS[i].value);
        lua_setfield(L, -2, HUB_CONSTANTS[i].name);
    }
    lua_setfield(L, -2, "hub");
}
