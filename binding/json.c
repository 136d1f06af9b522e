/* json.c - an exact JSON codec for Lua values: core.json_encode,
 * core.json_decode, core.json_null and core.json_empty_array, on the
 * plain C engine of json_text.c.
 *
 * Caveats:
 * - Tables: a sequence (keys 1..n, no holes) is an array, a table whose
 *   keys are all strings an object, an empty table {} (as lua-cjson
 *   writes it; core.json_empty_array writes []); any other table is an
 *   error.  Object members come in lua_next's order.
 * - core.json_null (a NULL lightuserdata: lua-cjson's cjson.null is the
 *   same value) is JSON null both ways.  Decoding cannot tell [] from {}:
 *   both become an empty table.  Duplicate keys: the last one wins.
 * - Numbers: integers (5.3+) print as integers, every 64-bit value;
 *   doubles in the fewest of 15 to 17 digits that read back, integral
 *   ones of magnitude <= 2^53 without a fraction ("1", "-0"); NaN and
 *   infinities are errors.  Decoding gives an integer for a literal
 *   without fraction or exponent that fits 64 bits ("-0" is the double
 *   -0.0), the nearest double for the others.  On Lua 5.1 and LuaJIT
 *   every number is a double, so integers past 2^53 lose their low bits
 *   (the nearest double, as strtod gives).
 * - Strings must be valid UTF-8 both ways (JSON is text: RFC 8259
 *   section 8.1).  Nesting deeper than max_depth (1000 unless opts say;
 *   lua-cjson's default) is an error, and so is a cyclic table.
 * - Nothing raises for a value JSON cannot carry: nil, message, details
 *   { code = "EINVAL" } ("ENOMEM" when memory runs out), the message
 *   naming where the value was ("$[2].name"). */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"
#include "json_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define JBUF_MT "signalr.json_buffer"
#define JBUF_KEY "signalr.json_buffer.shared" /* the registry's instance */
#define DEFAULT_DEPTH 1000
#define MAX_DEPTH 10000      /* the C stack's share per level is small */
#define CHECKED_DEPTH 256    /* sr_lua_json_args: well inside the core's */
#define KEEP_MAX 65536       /* a larger shared buffer is freed after use */

/* The sentinel core.json_empty_array points at. */
static const char empty_array = 0;

/* The output and scratch buffer shared by the calls of one Lua state (no
 * allocation per call): the registry holds it, and json_encode and
 * json_decode have it as their upvalue.  A call that finds it busy (a
 * finalizer run by the garbage collector during another call) gets a
 * buffer of its own; a call that raised (out of memory) leaves it busy,
 * so the calls after it all do. */
typedef struct {
    sr_json_buf b;
    sr_json_buf m; /* the MessagePack beside the text (sr_lua_json_args) */
    int busy;
} jbuf;

static int jbuf_gc(lua_State *L)
{
    jbuf *j = luaL_checkudata(L, 1, JBUF_MT);

    sr_json_buf_free(&j->b);
    sr_json_buf_free(&j->m);
    return 0;
}

static jbuf *jbuf_new(lua_State *L)
{
    jbuf *j = lua_newuserdatauv(L, sizeof *j, 0);

    memset(j, 0, sizeof *j);
    luaL_setmetatable(L, JBUF_MT);
    return j;
}

/* The shared buffer at idx, or (busy) a new one pushed on the stack. */
static jbuf *jbuf_take(lua_State *L, int idx)
{
    jbuf *j = lua_touserdata(L, idx);

    if (j->busy)
        return jbuf_new(L);
    j->busy = 1;
    j->b.len = 0;
    j->m.len = 0;
    return j;
}

static void jbuf_give(jbuf *j)
{
    j->busy = 0;
    j->b.len = 0;
    j->m.len = 0;
    if (j->b.cap > KEEP_MAX)
        sr_json_buf_free(&j->b);
    if (j->m.cap > KEEP_MAX)
        sr_json_buf_free(&j->m);
}

/* opts.max_depth of the options table at idx (nil: the default). */
static int opt_depth(lua_State *L, int idx)
{
    lua_Integer d;

    if (lua_isnoneornil(L, idx))
        return DEFAULT_DEPTH;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "max_depth");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return DEFAULT_DEPTH;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_argerror(L, idx, "max_depth must be a number");
    d = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (d < 1 || d > MAX_DEPTH)
        luaL_argerror(L, idx, "max_depth must be 1..10000");
    return (int)d;
}

/* ===== ENCODING ===== */

/* The tables being written, innermost first, with the key or index of
 * the member being written in each: the place a message names. */
typedef struct level {
    const struct level *up;
    const void *table;
    const char *key;        /* NULL: an array, at index */
    size_t klen;
    lua_Integer index;
} level;

typedef struct {
    lua_State *L;
    sr_json_buf *b;
    sr_json_buf *mp;     /* NULL, or the MessagePack of the same values */
    int max_depth;
    signalr_err code;
    char msg[400];
} enc;

/* One step of a path: [3], .name, ["a key"] or [?] (a key not shown). */
static void path_step(char *out, size_t room, const level *l)
{
    size_t i;
    int ident = l->klen > 0 && l->klen <= 40;

    if (!l->key) {
        snprintf(out, room, "[%lld]", (long long)l->index);
        return;
    }
    for (i = 0; i < l->klen && ident; i++) {
        char c = l->key[i];
        ident = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                c == '_' || (i > 0 && c >= '0' && c <= '9');
    }
    if (ident) {
        snprintf(out, room, ".%.*s", (int)l->klen, l->key);
        return;
    }
    for (i = 0; i < l->klen; i++)
        if (l->key[i] < 0x20 || l->key[i] > 0x7e || l->key[i] == '"')
            break;
    if (i == l->klen && l->klen <= 40)
        snprintf(out, room, "[\"%.*s\"]", (int)l->klen, l->key);
    else
        snprintf(out, room, "[?]");
}

/* Append s to the string in out[0..room), truncating. */
static void append(char *out, size_t room, const char *s)
{
    size_t o = strlen(out);

    if (o + 1 < room)
        snprintf(out + o, room - o, "%s", s);
}

/* The path of the member being written in at, root first: "$" then a
 * step per table, the middle of a path deeper than 16 elided. */
static void path_of(char *out, size_t room, const level *at)
{
    const level *outer[8], *inner[8], *l;
    size_t depth = 0, p;
    char step[64];

    for (l = at; l; l = l->up)
        depth++;
    /* position p counts from the innermost (0) */
    for (l = at, p = 0; l; l = l->up, p++) {
        if (p < 8)
            inner[p] = l;
        if (p + 8 >= depth)
            outer[depth - 1 - p] = l;
    }
    snprintf(out, room, "$");
    for (p = depth; p-- > 0;) {
        if (depth > 16 && p == 7)
            append(out, room, "...");
        if (depth > 16 && p >= 8 && p + 8 < depth)
            continue;
        l = p < 8 ? inner[p] : outer[depth - 1 - p];
        path_step(step, sizeof step, l);
        append(out, room, step);
    }
}

/* EINVAL: "<what> cannot be encoded as JSON (at <path>)"; returns -1. */
static int enc_fail(enc *e, const level *at, const char *fmt, ...)
{
    char path[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    append(e->msg, sizeof e->msg, " cannot be encoded as JSON");
    if (at) {
        path_of(path, sizeof path, at);
        append(e->msg, sizeof e->msg, " (at ");
        append(e->msg, sizeof e->msg, path);
        append(e->msg, sizeof e->msg, ")");
    }
    e->code = SIGNALR_EINVAL;
    return -1;
}

static int enc_oom(enc *e)
{
    snprintf(e->msg, sizeof e->msg, "out of memory");
    e->code = SIGNALR_ENOMEM;
    return -1;
}

/* n bytes of s onto b, the text or the MessagePack (the room checked
 * here first: these run a few times per value) */
static int put_on(enc *e, sr_json_buf *b, const void *s, size_t n)
{
    if (n > b->cap - b->len && sr_json_buf_reserve(b, n))
        return enc_oom(e);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int enc_put(enc *e, const char *s, size_t n)
{
    return put_on(e, e->b, s, n);
}

/* ----- the MessagePack beside the text -----
 * sp_send's frames carry the arguments both as JSON and as MessagePack;
 * written from the same Lua values in the same walk, the MessagePack is
 * byte for byte what the core's transcoding of the text gives
 * (json_mpack.c: the smallest integer forms, float64 for the others, a
 * container's header in its smallest form), so the core need not parse
 * the text again.  spec/unit/persistent_spec.lua compares the two. */

/* Tables nested deeper are left to the general path (the transcoder has
 * its own depth limit; this stays well inside it). */
#define MP_DEPTH 64

static int mp_put(enc *e, const void *s, size_t n)
{
    return put_on(e, e->mp, s, n);
}

/* tag, then v in bytes big-endian bytes (0: the tag alone) */
static int mp_tagged(enc *e, unsigned tag, unsigned long long v, int bytes)
{
    unsigned char h[9];
    int i;

    h[0] = (unsigned char)tag;
    for (i = 0; i < bytes; i++)
        h[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return mp_put(e, h, (size_t)bytes + 1);
}

static int mp_int(enc *e, long long v)
{
    unsigned long long u = (unsigned long long)v;

    if (v >= 0) {
        if (v < 128)
            return mp_tagged(e, (unsigned)v, 0, 0);
        if (v <= 0xff)
            return mp_tagged(e, 0xcc, u, 1);
        if (v <= 0xffff)
            return mp_tagged(e, 0xcd, u, 2);
        if (v <= 0xffffffffLL)
            return mp_tagged(e, 0xce, u, 4);
        return mp_tagged(e, 0xcf, u, 8);
    }
    if (v >= -32)
        return mp_tagged(e, 0xe0u | (unsigned)(v + 32), 0, 0);
    if (v >= -128)
        return mp_tagged(e, 0xd0, u & 0xff, 1);
    if (v >= -32768)
        return mp_tagged(e, 0xd1, u & 0xffff, 2);
    if (v >= -2147483647LL - 1)
        return mp_tagged(e, 0xd2, u & 0xffffffffULL, 4);
    return mp_tagged(e, 0xd3, u, 8);
}

/* A double whose JSON text is b[at..len): an integer literal there (an
 * integral value of at most 17 digits) is the integer; anything else
 * float64 (the text reads back to d exactly). */
static int mp_double(enc *e, double d, size_t at)
{
    unsigned long long bits;
    size_t i;

    for (i = at; i < e->b->len; i++) {
        char c = e->b->p[i];
        if (c == '.' || c == 'e' || c == 'E')
            break;
    }
    if (i == e->b->len)
        return mp_int(e, (long long)d);
    memcpy(&bits, &d, sizeof bits);
    return mp_tagged(e, 0xcb, bits, 8);
}

static int mp_str(enc *e, const char *s, size_t n)
{
    int r;

    if (n <= 31)
        r = mp_tagged(e, 0xa0u | (unsigned)n, 0, 0);
    else if (n <= 0xff)
        r = mp_tagged(e, 0xd9, n, 1);
    else if (n <= 0xffff)
        r = mp_tagged(e, 0xda, n, 2);
    else
        r = mp_tagged(e, 0xdb, n, 4);
    return r ? r : mp_put(e, s, n);
}

/* The header of a container of count members, whose one byte was put at
 * mp[at]: the fix form there, else widened in place (what follows moves
 * up 2 or 4 bytes). */
static int mp_close(enc *e, size_t at, size_t count, int map)
{
    unsigned char h[5];
    size_t hl, tail;

    if (count <= 15) {
        e->mp->p[at] = (char)((map ? 0x80 : 0x90) | count);
        return 0;
    }
    if (count <= 0xffff) {
        h[0] = map ? 0xde : 0xdc;
        h[1] = (unsigned char)(count >> 8);
        h[2] = (unsigned char)count;
        hl = 3;
    } else {
        h[0] = map ? 0xdf : 0xdd;
        h[1] = (unsigned char)(count >> 24);
        h[2] = (unsigned char)(count >> 16);
        h[3] = (unsigned char)(count >> 8);
        h[4] = (unsigned char)count;
        hl = 5;
    }
    if (sr_json_buf_reserve(e->mp, hl - 1))
        return enc_oom(e);
    tail = e->mp->len - at - 1;
    memmove(e->mp->p + at + hl, e->mp->p + at + 1, tail);
    memcpy(e->mp->p + at, h, hl);
    e->mp->len += hl - 1;
    return 0;
}

/* A container's placeholder byte (its position in *at); -1 when the
 * tables nest deeper than MP_DEPTH (the caller's general path does it). */
static int mp_open(enc *e, int depth, size_t *at)
{
    if (depth > MP_DEPTH) {
        snprintf(e->msg, sizeof e->msg, "nested too deeply for one pass");
        e->code = SIGNALR_EINVAL;
        return -1;
    }
    *at = e->mp->len;
    return mp_put(e, "", 1);
}

static int enc_table(enc *e, int t, int depth, const level *up);

/* The value at idx (absolute), a member of up's table (NULL: the
 * root), at depth tables deep. */
static int enc_value(enc *e, int idx, int depth, const level *up)
{
    lua_State *L = e->L;
    size_t n, bad = 0;
    const char *s;
    const void *p;
    int r;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        if (e->mp && mp_put(e, "\xc0", 1))
            return -1;
        return enc_put(e, "null", 4);
    case LUA_TBOOLEAN:
        r = lua_toboolean(L, idx);
        if (e->mp && mp_put(e, r ? "\xc3" : "\xc2", 1))
            return -1;
        return r ? enc_put(e, "true", 4) : enc_put(e, "false", 5);
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            long long v = (long long)lua_tointeger(L, idx);
            r = sr_json_put_integer(e->b, v);
            if (!r && e->mp)
                return mp_int(e, v);
        } else {
            double d = (double)lua_tonumber(L, idx);
            size_t at = e->b->len;
            r = sr_json_put_double(e->b, d);
            if (r == -2)
                return enc_fail(e, up, "%s", d != d ? "NaN"
                                : d > 0 ? "inf" : "-inf");
            if (!r && e->mp)
                return mp_double(e, d, at);
        }
        return r ? enc_oom(e) : 0;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        r = sr_json_put_string(e->b, s, n, &bad);
        if (r == -2)
            return enc_fail(e, up, "a string that is not valid UTF-8 "
                            "(byte %lu)", (unsigned long)bad);
        if (!r && e->mp)
            return mp_str(e, s, n);
        return r ? enc_oom(e) : 0;
    case LUA_TTABLE:
        return enc_table(e, idx, depth + 1, up);
    case LUA_TLIGHTUSERDATA:
        p = lua_touserdata(L, idx);
        if (!p) {
            if (e->mp && mp_put(e, "\xc0", 1))
                return -1;
            return enc_put(e, "null", 4);
        }
        if (p == &empty_array) {
            if (e->mp && mp_put(e, "\x90", 1))
                return -1;
            return enc_put(e, "[]", 2);
        }
        return enc_fail(e, up, "a light userdata");
    default:
        return enc_fail(e, up, "a %s", luaL_typename(L, idx));
    }
}

/* The bad key at -2 of a table that is no array: pops key and value. */
static int bad_key(enc *e, const level *at, int string_seen)
{
    lua_State *L = e->L;
    int kt = lua_type(L, -2);

    lua_pop(L, 2);
    if (kt == LUA_TNUMBER && !string_seen)
        return enc_fail(e, at, "a table whose number keys are not 1..n (a "
                        "sparse array; core.json_null is a JSON null)");
    if (kt == LUA_TNUMBER || kt == LUA_TSTRING)
        return enc_fail(e, at, "a table with both string and number keys");
    return enc_fail(e, at, "a table with a %s key", lua_typename(L, kt));
}

/* An array whose keys lua_next does not give as 1, 2, ...: checked,
 * then written by index. */
static int enc_array_slow(enc *e, int t, int depth, level *me)
{
    lua_State *L = e->L;
    size_t n = (size_t)lua_rawlen(L, t), count = 0, i, mat = 0;
    int r;

    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TNUMBER)
            return bad_key(e, me->up, lua_type(L, -2) == LUA_TSTRING);
        {
            lua_Number k = lua_tonumber(L, -2);
            if (!(k >= 1 && k <= (lua_Number)n &&
                  k == (lua_Number)(lua_Integer)k))
                return bad_key(e, me->up, 0);
        }
        count++;
        lua_pop(L, 1);
    }
    if (count != n)
        return enc_fail(e, me->up, "a table whose number keys are not 1..n "
                        "(a sparse array; core.json_null is a JSON null)");
    if (e->mp && mp_open(e, depth, &mat))
        return -1;
    if (enc_put(e, "[", 1))
        return -1;
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, t, (lua_Integer)i);
        me->index = (lua_Integer)i;
        r = enc_value(e, lua_gettop(L), depth, me);
        if (r)
            return r;
        lua_pop(L, 1);
        if (enc_put(e, ",", 1))
            return -1;
    }
    e->b->p[e->b->len - 1] = ']';
    return e->mp ? mp_close(e, mat, n, 0) : 0;
}

/* The first pair of table t is on the stack (key 1): write it and the
 * rest while lua_next gives 2, 3, ... (a sequence in the array part);
 * anything else starts again the slow way. */
static int enc_array(enc *e, int t, int depth, level *me)
{
    lua_State *L = e->L;
    size_t start = e->b->len, mat = 0;
    lua_Integer i = 1;
    int r;

    if (e->mp && mp_open(e, depth, &mat))
        return -1;
    if (enc_put(e, "[", 1))
        return -1;
    for (;;) {
        if (lua_type(L, -2) != LUA_TNUMBER ||
            lua_tonumber(L, -2) != (lua_Number)i) {
            lua_pop(L, 2);
            e->b->len = start;
            if (e->mp)
                e->mp->len = mat;
            return enc_array_slow(e, t, depth, me);
        }
        me->index = i++;
        r = enc_value(e, lua_gettop(L), depth, me);
        if (r)
            return r;
        lua_pop(L, 1);
        if (enc_put(e, ",", 1))
            return -1;
        if (!lua_next(L, t))
            break;
    }
    e->b->p[e->b->len - 1] = ']';
    return e->mp ? mp_close(e, mat, (size_t)(i - 1), 0) : 0;
}

/* The first pair of table t is on the stack (a string key). */
static int enc_object(enc *e, int t, int depth, level *me)
{
    lua_State *L = e->L;
    size_t kl, bad = 0, mat = 0, count = 0;
    int r;

    if (e->mp && mp_open(e, depth, &mat))
        return -1;
    if (enc_put(e, "{", 1))
        return -1;
    for (;;) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return bad_key(e, me->up, 1);
        me->key = lua_tolstring(L, -2, &kl);
        me->klen = kl;
        r = sr_json_put_string(e->b, me->key, kl, &bad);
        if (r == -2)
            return enc_fail(e, me, "a key that is not valid UTF-8 (byte "
                            "%lu)", (unsigned long)bad);
        if (r || enc_put(e, ":", 1))
            return enc_oom(e);
        if (e->mp && mp_str(e, me->key, kl))
            return -1;
        count++;
        r = enc_value(e, lua_gettop(L), depth, me);
        if (r)
            return r;
        lua_pop(L, 1);
        if (enc_put(e, ",", 1))
            return -1;
        if (!lua_next(L, t))
            break;
    }
    e->b->p[e->b->len - 1] = '}';
    return e->mp ? mp_close(e, mat, count, 1) : 0;
}

static int enc_table(enc *e, int t, int depth, const level *up)
{
    lua_State *L = e->L;
    const void *self = lua_topointer(L, t);
    const level *l;
    level me;

    if (depth > e->max_depth) {
        for (l = up; l; l = l->up)
            if (l->table == self)
                return enc_fail(e, up, "a cyclic table");
        return enc_fail(e, up, "a table nested deeper than %d",
                        e->max_depth);
    }
    if (!lua_checkstack(L, 4))
        return enc_fail(e, up, "a table nested too deeply for the Lua "
                        "stack");
    me.up = up;
    me.table = self;
    me.key = NULL;
    me.klen = 0;
    me.index = 0;
    lua_pushnil(L);
    if (!lua_next(L, t)) {
        if (e->mp && mp_put(e, "\x80", 1))
            return -1;
        return enc_put(e, "{}", 2);
    }
    if (lua_type(L, -2) == LUA_TSTRING)
        return enc_object(e, t, depth, &me);
    if (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) == 1)
        return enc_array(e, t, depth, &me);
    lua_pop(L, 2);
    return enc_array_slow(e, t, depth, &me);
}

/* core.json_encode(value[, opts]) -> text | nil, msg, details
 * opts.max_depth: how deeply tables may nest (1000). */
static int l_json_encode(lua_State *L)
{
    enc e;
    jbuf *j;
    int base, r;

    luaL_checkany(L, 1);
    memset(&e, 0, sizeof e);
    e.L = L;
    e.max_depth = opt_depth(L, 2);
    lua_settop(L, 2);
    j = jbuf_take(L, lua_upvalueindex(1));
    base = lua_gettop(L);
    e.b = &j->b;
    r = enc_value(&e, 1, 0, NULL);
    lua_settop(L, base);
    if (r) {
        jbuf_give(j);
        return sr_lua_fail_msg(L, e.code, e.msg);
    }
    lua_pushlstring(L, e.b->p ? e.b->p : "", e.b->len);
    jbuf_give(j);
    return 1;
}

const char *sr_lua_json_args(lua_State *L, int idx, int buf_idx, size_t *len,
                             const char **mp, size_t *mp_len, void **held)
{
    enc e;
    jbuf *j;
    int top = lua_gettop(L), r;

    *held = NULL;
    if (lua_type(L, idx) != LUA_TTABLE)
        return NULL;
    lua_rawgeti(L, idx, 1);
    r = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (r)
        return NULL;
    memset(&e, 0, sizeof e);
    e.L = L;
    /* its callers pass the text as checked: no deeper than the core's
     * own check takes (JSON nested at most 512 deep), the rest is the
     * general path's */
    e.max_depth = CHECKED_DEPTH;
    j = jbuf_take(L, buf_idx); /* a new one (busy) stays pushed */
    e.b = &j->b;
    e.mp = mp ? &j->m : NULL;
    r = enc_value(&e, idx, 0, NULL);
    if (lua_gettop(L) > top + 1)
        lua_settop(L, top + 1);
    if (r || !e.b->len || e.b->p[0] != '[') {
        jbuf_give(j);
        return NULL;
    }
    *held = j;
    *len = e.b->len;
    if (mp) {
        *mp = j->m.p;
        *mp_len = j->m.len;
    }
    return e.b->p;
}

void sr_lua_json_args_done(void *held)
{
    if (held)
        jbuf_give(held);
}

void sr_lua_push_json_buffer(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, JBUF_KEY);
}

/* core.json_encode_args(args) -> text | nil: the common case of an
 * invocation's argument list, a table whose [1] is set that encodes as a
 * JSON array, in one call; nil for anything else (the caller's general
 * path then encodes or explains).  Lua 5.1 and LuaJIT: the same. */
static int l_json_encode_args(lua_State *L)
{
    enc e;
    jbuf *j;
    int r;

    lua_settop(L, 1);
    if (lua_type(L, 1) != LUA_TTABLE) {
        lua_pushnil(L);
        return 1;
    }
    lua_rawgeti(L, 1, 1);
    r = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (r) {
        lua_pushnil(L);
        return 1;
    }
    memset(&e, 0, sizeof e);
    e.L = L;
    e.max_depth = DEFAULT_DEPTH;
    j = jbuf_take(L, lua_upvalueindex(1));
    e.b = &j->b;
    r = enc_value(&e, 1, 0, NULL);
    lua_settop(L, 2);
    if (r || !e.b->len || e.b->p[0] != '[')
        lua_pushnil(L);
    else
        lua_pushlstring(L, e.b->p, e.b->len);
    jbuf_give(j);
    return 1;
}

/* ===== DECODING ===== */

typedef struct {
    lua_State *L;
    const char *why;  /* a callback's reason to stop */
} lvis;

static int v_null(void *ud)
{
    lua_pushlightuserdata(((lvis *)ud)->L, NULL);
    return 0;
}

static int v_boolean(void *ud, int b)
{
    lua_pushboolean(((lvis *)ud)->L, b);
    return 0;
}

static int v_integer(void *ud, long long v)
{
    sr_lua_pushint64(((lvis *)ud)->L, v);
    return 0;
}

static int v_number(void *ud, double d)
{
    lua_pushnumber(((lvis *)ud)->L, (lua_Number)d);
    return 0;
}

static int v_string(void *ud, const char *s, size_t n)
{
    lua_pushlstring(((lvis *)ud)->L, s, n);
    return 0;
}

static int v_begin(void *ud, int array)
{
    lvis *v = ud;

    (void)array;
    if (!lua_checkstack(v->L, 4)) {
        v->why = "nested too deeply for the Lua stack";
        return -1;
    }
    lua_newtable(v->L);
    return 0;
}

static int v_item(void *ud, size_t index)
{
    lua_rawseti(((lvis *)ud)->L, -2, (lua_Integer)index);
    return 0;
}

static int v_member(void *ud)
{
    lua_rawset(((lvis *)ud)->L, -3);
    return 0;
}

static int v_end(void *ud, int array, size_t count)
{
    (void)ud;
    (void)array;
    (void)count;
    return 0;
}

static const sr_json_visitor LUA_BUILDER = {
    v_null, v_boolean, v_integer, v_number, v_string,
    v_begin, v_string, v_item, v_member, v_end
};

/* Decode s[0..n) with the shared buffer at jidx: 0 with the value
 * pushed, or -1 with nothing pushed and msg, *code set. */
static int decode(lua_State *L, int jidx, const char *s, size_t n,
                  int max_depth, char msg[160], signalr_err *code)
{
    int top = lua_gettop(L), r;
    jbuf *j = jbuf_take(L, jidx);
    sr_json_error err;
    lvis v;

    v.L = L;
    v.why = NULL;
    r = sr_json_parse(s, n, max_depth, &LUA_BUILDER, &v, &j->b, &err);
    jbuf_give(j);
    if (r) {
        lua_settop(L, top);
        *code = r == SR_JSON_ENOMEM ? SIGNALR_ENOMEM : SIGNALR_EINVAL;
        if (r == SR_JSON_ECALLBACK && v.why)
            snprintf(msg, 160, "%s at byte %lu", v.why,
                     (unsigned long)err.pos);
        else
            snprintf(msg, 160, "%s", err.msg);
        return -1;
    }
    if (lua_gettop(L) > top + 1) /* over a buffer jbuf_take pushed */
        lua_replace(L, top + 1);
    return 0;
}

int sr_lua_json_decode(lua_State *L, const char *s, size_t n, char msg[160])
{
    signalr_err code;
    int r;

    lua_getfield(L, LUA_REGISTRYINDEX, JBUF_KEY);
    r = decode(L, lua_gettop(L), s, n, DEFAULT_DEPTH, msg, &code);
    lua_remove(L, r ? -1 : -2);
    return r;
}

/* core.json_decode(text[, opts]) -> value | nil, msg, details
 * opts.max_depth: how deeply arrays and objects may nest (1000). */
static int l_json_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int depth = opt_depth(L, 2);
    signalr_err code;
    char msg[160];

    lua_settop(L, 2);
    if (decode(L, lua_upvalueindex(1), s, n, depth, msg, &code))
        return sr_lua_fail_msg(L, code, msg);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"json_encode", l_json_encode},
    {"json_encode_args", l_json_encode_args},
    {"json_decode", l_json_decode},
    {NULL, NULL}
};

void sr_lua_open_json(lua_State *L)
{
    if (luaL_newmetatable(L, JBUF_MT)) {
        lua_pushcfunction(L, jbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    jbuf_new(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, JBUF_KEY);
    luaL_setfuncs(L, funcs, 1); /* the buffer as their upvalue */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "json_null");
    lua_pushlightuserdata(L, (void *)&empty_array);
    lua_setfield(L, -2, "json_empty_array");
}
