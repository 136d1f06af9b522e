/* stateless.c - the functions of `signalr.core` that hold no state:
 * reading replies, retry delays, identity requests, JWTs, URL escapes,
 * name checks, upstream signatures, the clock and GUIDs. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <openssl/rand.h>
#include <string.h>
#include <time.h>

/* core.http_request(method, url, headers, body, content_type)
 * -> request table | nil, msg, details (for the cosocket transport) */
static int l_http_request(lua_State *L)
{
    box *b;

    lua_settop(L, 5); /* the box goes above the arguments */
    b = sr_lua_new_box(L);
    int r = sr_lua_build_http(L, 1, b);

    return r ? r : sr_lua_push_request(L, b);
}

/* core.read_reply(op, status, error_code|nil, body|nil)
 * -> true | false | body (operations that answer with data)
 *    | nil, msg, details */
static int l_read_reply(lua_State *L)
{
    signalr_op op = sr_lua_check_op(L, 1);
    signalr_reply r;
    signalr_error e;
    int value;

    r.status = (int)luaL_checknumber(L, 2);
    r.error_code = luaL_optstring(L, 3, NULL);
    r.body = luaL_optlstring(L, 4, NULL, &r.body_len);
    if (signalr_reply_read(op, &r, &value, &e))
        return sr_lua_push_fail(L, &e);
    if (signalr_op_returns_data(op))
        lua_pushlstring(L, r.body ? r.body : "", r.body ? r.body_len : 0);
    else
        lua_pushboolean(L, value);
    return 1;
}

/* Body bytes core.parse_reply keeps; past them a reply's body is cut
 * (and an operation that answers with data then fails to read it). */
#define PARSE_KEEP (64u * 1024 * 1024)

/* Push a reply reader's outcome (rc, done, r; b owns r.body until it is
 * pushed, and is given back here, sr_lua_give_box): see
 * core.parse_reply.  Returns the count pushed. */
static int push_parsed(lua_State *L, signalr_err rc, int done,
                       signalr_parsed_reply *r, const signalr_error *e,
                       box *b)
{
    if (rc) {
        sr_lua_give_box(b);
        sr_lua_push_fail(L, e);
        lua_pushboolean(L, 0);
        lua_replace(L, -4);
        return 3;
    }
    if (!done) {
        sr_lua_give_box(b);
        lua_pushnil(L);
        return 1;
    }
    b->a = r->body;
    if (r->truncated) {
        /* not a body to act on: an answer cut short would read wrong */
        sr_lua_give_box(b);
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "malformed reply: its body is longer than %d "
                        "MiB", (int)(PARSE_KEEP >> 20));
        lua_createtable(L, 0, 2);
        lua_pushliteral(L, "EHTTP");
        lua_setfield(L, -2, "code");
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "sent");
        return 3;
    }
    lua_pushinteger(L, r->status);
    lua_pushboolean(L, r->keep_alive);
    if (r->error_code[0])
        lua_pushstring(L, r->error_code);
    else
        lua_pushnil(L);
    if (r->retry_after_s >= 0)
        lua_pushinteger(L, (lua_Integer)r->retry_after_s);
    else
        lua_pushnil(L);
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    sr_lua_give_box(b);
    lua_pushboolean(L, r->extra);
    return 6;
}

/* core.parse_reply(bytes, head_request[, eof]): the core's HTTP/1.x reply
 * reader (signalr_reply_parse) over the bytes a connection gave so far
 * (eof: and then it closed), for transports written in Lua.  Returns
 *   nil                       a reply has not come whole yet
 *   false, msg, details       not a reply the reader accepts (EHTTP)
 *   status, keep_alive, error_code|nil, retry_after_s|nil, body, extra
 * (extra: bytes came past the reply: do not reuse the connection).  For
 * a reply that comes in several reads, core.reply_reader reads each part
 * once. */
static int l_parse_reply(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    /* the functions' reused box (an upvalue) owns the body */
    box *b = (lua_settop(L, 3), sr_lua_take_box(L, lua_upvalueindex(1)));
    signalr_parsed_reply r;
    signalr_error e;
    int done;
    signalr_err rc = signalr_reply_parse(p, n, lua_toboolean(L, 2),
                                         lua_toboolean(L, 3), PARSE_KEEP,
                                         &done, &r, &e);

    return push_parsed(L, rc, done, &r, &e, b);
}

#define READER_MT "signalr.reply_reader"

typedef struct {
    signalr_reply_reader *r;
} lreader;

/* core.reply_reader(head_request) -> a reader: rd:feed(bytes[, eof]) with
 * each part as it arrives answers as core.parse_reply does (the reply
 * once whole); one reader per reply. */
static int l_reply_reader(lua_State *L)
{
    int head = lua_toboolean(L, 1);
    lreader *rd = lua_newuserdatauv(L, sizeof(*rd), 0);
    signalr_error e;

    rd->r = NULL;
    luaL_setmetatable(L, READER_MT);
    if (signalr_reply_reader_new(head, PARSE_KEEP, &rd->r, &e))
        return sr_lua_push_fail(L, &e);
    return 1;
}

static int l_reader_feed(lua_State *L)
{
    lreader *rd = luaL_checkudata(L, 1, READER_MT);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    box *b = (lua_settop(L, 3), sr_lua_new_box(L)); /* owns the body */
    signalr_parsed_reply r;
    signalr_error e;
    int done;
    signalr_err rc = signalr_reply_reader_feed(rd->r, p, n,
                                               lua_toboolean(L, 3), &done,
                                               &r, &e);

    return push_parsed(L, rc, done, &r, &e, b);
}

static int l_reader_free(lua_State *L)
{
    lreader *rd = luaL_checkudata(L, 1, READER_MT);

    signalr_reply_reader_free(rd->r);
    rd->r = NULL;
    return 0;
}

static const luaL_Reg reader_methods[] = {
    {"feed", l_reader_feed},
    {NULL, NULL}
};

/* core.retry_delay(op, attempt, failure_code, status, retry_after,
 *                  retries, base_s, max_s[, mode]) -> seconds | nil
 * (mode "fixed": the same delay each time; default "exponential") */
static int l_retry_delay(lua_State *L)
{
    /* "http": an identity request (signalr_request_http()) */
    signalr_op op = !strcmp(luaL_checkstring(L, 1), "http")
                        ? SIGNALR_OP_MAX
                        : sr_lua_check_op(L, 1);
    int attempt = (int)luaL_checknumber(L, 2);
    const char *code = luaL_checkstring(L, 3);
    int status = (int)luaL_optnumber(L, 4, 0);
    long ra = (long)luaL_optnumber(L, 5, -1);
    signalr_retry_policy pol;
    signalr_err failure = SIGNALR_EHTTP;
    long d;
    int i;

    pol.max_retries = (int)luaL_checknumber(L, 6);
    pol.base_delay_ms = (long)(luaL_checknumber(L, 7) * 1000);
    pol.max_delay_ms = (long)(luaL_checknumber(L, 8) * 1000);
    pol.mode = !strcmp(luaL_optstring(L, 9, "exponential"), "fixed")
                   ? SIGNALR_RETRY_FIXED
                   : SIGNALR_RETRY_EXPONENTIAL;
    for (i = 0; i < SIGNALR_ERR_MAX; i++)
        if (!strcmp(signalr_err_name((signalr_err)i), code))
            failure = (signalr_err)i;
    d = signalr_retry_delay(op, &pol, attempt, failure, status, ra);
    if (d < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, d / 1000.0);
    return 1;
}

static int l_jwt_sign(lua_State *L)
{
    size_t pl, kl;
    const char *payload = luaL_checklstring(L, 1, &pl);
    const char *key = luaL_checklstring(L, 2, &kl);
    const char *kid = luaL_optstring(L, 3, NULL);
    signalr_error e;
    box *b = sr_lua_new_box(L);

    if (signalr_jwt_sign_kid(payload, pl, (const unsigned char *)key, kl, kid,
                             &b->a, NULL, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushstring(L, b->a);
    return 1;
}

/* core.jwt_sign_rs256(payload_json, path[, password])
 * -> token | nil, msg, details (path: PEM or PKCS#12) */
static int l_jwt_sign_rs256(lua_State *L)
{
    size_t pl, fl, wl = 0;
    const char *payload = luaL_checklstring(L, 1, &pl);
    const char *path = luaL_checklstring(L, 2, &fl);
    const char *password = luaL_optlstring(L, 3, NULL, &wl);
    signalr_error e;
    box *b;

    if (strlen(path) != fl)
        return sr_lua_nul_fail(L, "certificate path");
    if (password && strlen(password) != wl)
        return sr_lua_nul_fail(L, "certificate password");
    b = sr_lua_new_box(L);
    if (signalr_jwt_sign_rs256_cert(payload, pl, path, password, &b->a, NULL,
                                    &e))
        return sr_lua_push_fail(L, &e);
    lua_pushstring(L, b->a);
    return 1;
}

/* core.jwt_verify(token, key[, now]) -> payload_json | nil, msg, details
 * now = 0 skips the expiry check. */
static int l_jwt_verify(lua_State *L)
{
    size_t tl, kl, pl = 0;
    const char *tok = luaL_checklstring(L, 1, &tl);
    const char *key = luaL_checklstring(L, 2, &kl);
    time_t now = (time_t)luaL_optnumber(L, 3, (lua_Number)time(NULL));
    signalr_error e;
    box *b = sr_lua_new_box(L);

    if (signalr_jwt_verify(tok, tl, (const unsigned char *)key, kl, now,
                           &b->a, &pl, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushlstring(L, b->a, pl);
    return 1;
}

static int l_url_encode(lua_State *L)
{
    size_t n, need;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer buf;
    char *p;

    need = signalr_url_encode(NULL, 0, s, n);
    luaL_buffinit(L, &buf);
    if (need < LUAL_BUFFERSIZE) {
        p = luaL_prepbuffer(&buf);
        signalr_url_encode(p, need + 1, s, n);
        luaL_addsize(&buf, need);
    } else {
        size_t i;

        for (i = 0; i < n; i++) {
            char tmp[4];
            size_t k = signalr_url_encode(tmp, sizeof(tmp), s + i, 1);

            luaL_addlstring(&buf, tmp, k);
        }
    }
    luaL_pushresult(&buf);
    return 1;
}

/* core.url_decode(s[, plus_is_space]) -> string | nil, msg, details */
static int l_url_decode(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    int plus = lua_toboolean(L, 2);
    char *p = lua_newuserdatauv(L, n + 1, 0);

    m = signalr_url_decode(p, s, n, plus);
    if (m == (size_t)-1)
        return sr_lua_fail_msg(L, SIGNALR_EINVAL, "malformed percent-escape");
    lua_pushlstring(L, p, m);
    return 1;
}

/* core.validate(kind, s) -> true | nil, msg, details
 * kind: "hub", "group", or a label for ids ("user id", ...). */
static int l_validate(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    signalr_error e;
    signalr_err rc;

    if (!strcmp(kind, "hub"))
        rc = signalr_validate_hub(s, n, &e);
    else if (!strcmp(kind, "group"))
        rc = signalr_validate_group(s, n, &e);
    else
        rc = signalr_validate_id(kind, s, n, &e);
    if (rc)
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* ===== serverless upstream signatures ===== */

/* core.upstream_sign(key, connection_id) -> "sha256=<HEX>" */
static int l_upstream_sign(lua_State *L)
{
    const char *key = luaL_checkstring(L, 1);
    size_t n;
    const char *id = luaL_checklstring(L, 2, &n);
    char out[SIGNALR_SIGNATURE_LEN + 1];
    signalr_error e;

    if (signalr_upstream_sign(key, id, n, out, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushstring(L, out);
    return 1;
}

/* core.upstream_verify(header, connection_id, { key, ... }) -> the index
 * of the key that signed it | false, "mismatch" | false, "malformed" */
static int l_upstream_verify(lua_State *L)
{
    size_t hn, idn, nkeys, i;
    const char *h = luaL_checklstring(L, 1, &hn);
    const char *id = luaL_checklstring(L, 2, &idn);
    const char *keys[16];
    int r;

    luaL_checktype(L, 3, LUA_TTABLE);
    nkeys = (size_t)lua_rawlen(L, 3);
    if (nkeys > 16)
        return luaL_argerror(L, 3, "at most 16 keys");
    for (i = 0; i < nkeys; i++) {
        lua_rawgeti(L, 3, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 3, "keys must be strings");
        keys[i] = lua_tostring(L, -1);
        lua_pop(L, 1); /* the table keeps the string alive */
    }
    r = signalr_upstream_verify(h, hn, id, idn, keys, nkeys);
    if (r >= 0) {
        lua_pushinteger(L, r + 1);
        return 1;
    }
    if (r == -3)
        return luaL_error(L, "signalr.core: HMAC-SHA256 failed");
    lua_pushboolean(L, 0);
    lua_pushstring(L, r == -2 ? "malformed" : "mismatch");
    return 2;
}

/* core.monotonic() -> seconds on a monotonic clock (for deadlines) */
static int l_monotonic(lua_State *L)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
    return 1;
}

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

/* ===== core.keyset(): RSA public keys for RS256 tokens ===== */

#define KEYSET_MT "signalr.keyset"

typedef struct {
    signalr_keyset *ks;
} lkeyset;

static lkeyset *check_keyset(lua_State *L)
{
    lkeyset *k = luaL_checkudata(L, 1, KEYSET_MT);

    if (!k->ks)
        luaL_argerror(L, 1, "the key set is freed");
    return k;
}

/* core.keyset() -> a key set (empty) */
static int l_keyset(lua_State *L)
{
    lkeyset *k = lua_newuserdata(L, sizeof(*k));

    k->ks = NULL;
    luaL_setmetatable(L, KEYSET_MT);
    k->ks = signalr_keyset_new();
    if (!k->ks)
        return luaL_error(L, "signalr.core: out of memory");
    return 1;
}

static int l_keyset_free(lua_State *L)
{
    lkeyset *k = luaL_checkudata(L, 1, KEYSET_MT);

    signalr_keyset_free(k->ks);
    k->ks = NULL;
    return 0;
}

/* ks:add_pem(pem[, kid]) -> true | nil, msg, details */
static int l_keyset_add_pem(lua_State *L)
{
    lkeyset *k = check_keyset(L);
    size_t n;
    const char *pem = luaL_checklstring(L, 2, &n);
    const char *kid = luaL_optstring(L, 3, NULL);
    signalr_error e;

    if (signalr_keyset_add_pem(k->ks, pem, n, kid, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* ks:add_jwk(n, e[, kid]) -> true | nil, msg, details */
static int l_keyset_add_jwk(lua_State *L)
{
    lkeyset *k = check_keyset(L);
    size_t nl, el;
    const char *n = luaL_checklstring(L, 2, &nl);
    const char *x = luaL_checklstring(L, 3, &el);
    const char *kid = luaL_optstring(L, 4, NULL);
    signalr_error e;

    if (signalr_keyset_add_jwk(k->ks, n, nl, x, el, kid, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_keyset_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)signalr_keyset_count(check_keyset(L)->ks));
    return 1;
}

/* ks:verify(token) -> payload_json | nil, msg, details (claims unchecked) */
static int l_keyset_verify(lua_State *L)
{
    lkeyset *k = check_keyset(L);
    size_t tl, pl = 0;
    const char *tok = luaL_checklstring(L, 2, &tl);
    signalr_error e;
    box *b = sr_lua_new_box(L);

    if (signalr_jwt_verify_rs256(k->ks, tok, tl, &b->a, &pl, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushlstring(L, b->a, pl);
    return 1;
}

static const luaL_Reg keyset_methods[] = {
    {"add_pem", l_keyset_add_pem},
    {"add_jwk", l_keyset_add_jwk},
    {"count", l_keyset_count},
    {"verify", l_keyset_verify},
    {"free", l_keyset_free},
    {NULL, NULL}
};

static const luaL_Reg funcs[] = {
    {"keyset", l_keyset},
    {"monotonic", l_monotonic},
    {"guid", l_guid},
    {"upstream_sign", l_upstream_sign},
    {"upstream_verify", l_upstream_verify},
    {"read_reply", l_read_reply},
    {"parse_reply", l_parse_reply},
    {"reply_reader", l_reply_reader},
    {"retry_delay", l_retry_delay},
    {"http_request", l_http_request},
    {"jwt_sign", l_jwt_sign},
    {"jwt_sign_rs256", l_jwt_sign_rs256},
    {"jwt_verify", l_jwt_verify},
    {"url_encode", l_url_encode},
    {"url_decode", l_url_decode},
    {"validate", l_validate},
    {NULL, NULL}
};

void sr_lua_open_stateless(lua_State *L)
{
    sr_lua_metatable(L, KEYSET_MT, keyset_methods, l_keyset_free);
    sr_lua_metatable(L, READER_MT, reader_methods, l_reader_free);
    sr_lua_new_box(L); /* the functions' reused box (l_parse_reply) */
    luaL_setfuncs(L, funcs, 1);
}
