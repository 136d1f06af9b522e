/* binding.h - what the files of the private `signalr.core` module share.
 * The module marshals Lua values to the C core and back.  No policy lives
 * here: defaults, option checking and messages for users are the Lua
 * layer's (lua/signalr/).
 *
 * Conventions: a wrong argument type raises (luaL_check*); bad data and
 * failures return nil, message, details where details is a table with
 * `code` (e.g. "EINVAL") and, for HTTP replies, `status`, `service_code`
 * and `body`.  C memory is never live across a call that can raise: built
 * requests sit in a userdata box whose __gc releases them.
 *
 * Files, one concern each, none calling back into the one that uses it:
 * helpers.c and params.c serve the others; client.c, async.c,
 * stateless.c, pollset.c, svcproto.c, ws.c, sock.c, json.c and
 * hubproto.c each register their functions and metatables from one
 * sr_lua_open_* function; signalr_core.c (luaopen_signalr_core) only
 * calls those.  json_text.c is JSON text in plain C (no Lua), under
 * json.c. */
#ifndef SIGNALR_BINDING_H
#define SIGNALR_BINDING_H

#include "compat.h"
#include "signalr.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden) /* only luaopen_signalr_core is public */
#endif

#define CLIENT_MT "signalr.client"
#define BOX_MT "signalr.box"

/* The client userdata (client.c; async.c adds its asynchronous methods). */
typedef struct {
    signalr_client *c;
    signalr_http *h;             /* created on the first call */
    signalr_multi *m;            /* created on the first submit */
    size_t queue_size;
    long max_connections;
    signalr_http_options http;
    signalr_retry_policy retry;
    char *ca_file;
    char *proxy;                 /* opts.proxy, a copy (NULL: none) */
    /* opts.log (1: a Lua function, kept in the userdata's user value,
     * not the registry, so a function that refers back to the client
     * does not keep it alive) and the state of the call under way, which
     * the core's log lines reach (the client is its first argument) */
    int has_log;
    lua_State *L;
} lclient;

/* Holds C allocations while results are pushed (a push may raise). */
typedef struct {
    signalr_request req;
    char *a, *b;            /* released with signalr_free */
    int busy;               /* a reused box (sr_lua_take_box) in use */
} box;

/* ===== helpers.c ===== */

/* nil, message, details (cf. luv_error); returns 3 */
int sr_lua_push_fail(lua_State *L, const signalr_error *e);
/* the details table alone */
void sr_lua_push_details(lua_State *L, const signalr_error *e);
/* nil, msg, { code = <code> }; returns 3 */
int sr_lua_fail_msg(lua_State *L, signalr_err code, const char *msg);
/* EINVAL: "<field> contains a NUL byte"; returns 3 */
int sr_lua_nul_fail(lua_State *L, const char *field);
/* A list { {fd=, read=, write=}, ... } of n descriptors (events: 1 read,
 * 2 write). */
void sr_lua_push_fds(lua_State *L, const int *fds, const int *ev, int n);
/* A zeroed box on top of the stack. */
box *sr_lua_new_box(lua_State *L);
/* The box at idx (an upvalue: one box reused by the calls of a Lua
 * state, no userdata per call) for a call that runs no Lua code between
 * take and give; when it is busy (a finalizer that runs during another
 * call's push, or a call that raised and never gave it back) a new box
 * pushed on the stack instead.  Give it back (its C allocations are
 * released) before pushing an error.  A push that raises (out of memory)
 * leaves the box busy with what it held until the Lua state closes, as
 * json.c's shared buffer does: the calls after it each get a new box. */
box *sr_lua_take_box(lua_State *L, int idx);
void sr_lua_give_box(box *b);
/* The operation named by the string at idx; raises when unknown. */
signalr_op sr_lua_check_op(lua_State *L, int idx);
/* Optional string field k of the table at t; raises on a wrong type;
 * *nul set to k on a NUL byte. */
const char *sr_lua_opt_field(lua_State *L, int t, const char *k,
                             size_t *len, const char **nul);
/* Register metatable name (when new) with methods as __index, gc as __gc
 * and __name. */
void sr_lua_metatable(lua_State *L, const char *name, const luaL_Reg *m,
                      lua_CFunction gc);
/* Register the box's metatable. */
void sr_lua_open_helpers(lua_State *L);

/* ===== params.c ===== */

/* Read a params table at index t into p.  Returns NULL or the name of a
 * field holding a NUL byte (the caller answers EINVAL). */
const char *sr_lua_read_params(lua_State *L, int t, signalr_params *p);
/* A send's fields as arguments i.. (hub, target, arguments, id,
 * excluded) for op, one of the four sends (other ops raise); the same
 * result as sr_lua_read_params, without a table. */
const char *sr_lua_read_send(lua_State *L, int i, signalr_op op,
                             signalr_params *p);

/* Push built request b->req as a table, then release it.  Returns 1. */
int sr_lua_push_request(lua_State *L, box *b);
/* Build an identity request from the arguments at i.. into b->req.
 * Returns 0, or pushes nil, msg, details and returns 3. */
int sr_lua_build_http(lua_State *L, int i, box *b);

/* ===== client.c ===== */

/* The open client at argument 1; raises when it is not one or closed. */
lclient *sr_lua_check_client(lua_State *L);
/* What a client method does with its operation and parameters (nul: a
 * field holding a NUL byte): pushes its results, returns their count. */
typedef int (*sr_lua_op_fn)(lua_State *L, lclient *lc, signalr_op op,
                            const signalr_params *p, const char *nul);
/* A client method of the form method(op, params) or, with send, of the
 * form method(op, hub, target, arguments, id, excluded) for the four
 * sends: reads them and calls fn. */
int sr_lua_client_op(lua_State *L, int send, sr_lua_op_fn fn);

/* ===== ws.c ===== */

/* The WebSocket at argument i; raises when it is not one or freed. */
signalr_ws *sr_lua_check_ws(lua_State *L, int i);

/* ===== svcproto.c ===== */

/* A message read from the service as a table { type = n, ... }. */
void sr_lua_push_sp_message(lua_State *L, const signalr_sp_message *m);
/* The messages of the complete frames in p[0..n) as a list (a malformed
 * message is left out and counted in list.malformed); *taken: the bytes
 * they took.  Returns 0, or 2 when a broken stream ended the list: its
 * message and details are pushed after the list. */
int sr_lua_push_sp_messages(lua_State *L, const char *p, size_t n,
                            size_t max, size_t *taken);

/* ===== json.c ===== */

/* Decode the JSON text s[0..n) onto the stack (0), or push nothing and
 * put the reason in msg (-1). */
int sr_lua_json_decode(lua_State *L, const char *s, size_t n, char msg[160]);
/* The JSON text of the argument list at idx, json_encode_args's common
 * case (a table whose [1] is set that encodes as an array), in the shared
 * JSON buffer (sr_lua_push_json_buffer); NULL for anything else (the
 * caller's general path encodes or explains).  The text stays valid, and
 * the buffer taken, until sr_lua_json_args_done(*held); run no Lua code
 * in between.  May push a value on the stack.  mp not NULL: *mp and
 * *mp_len also get the same arguments as MessagePack, byte for byte what
 * the core's transcoding of the text gives (signalr_sp_data's
 * arguments_mp), written in the same walk; NULL then also for tables
 * nested deeper than 64.  The text is for passing as checked
 * (arguments_checked): NULL for tables nested deeper than 256. */
const char *sr_lua_json_args(lua_State *L, int idx, int buf_idx, size_t *len,
                             const char **mp, size_t *mp_len, void **held);
void sr_lua_json_args_done(void *held);
/* Push the shared JSON buffer (an upvalue for functions that encode). */
void sr_lua_push_json_buffer(lua_State *L);

/* ===== registration =====
 * Each registers its metatables and adds its functions to the module
 * table on top of the stack; sr_lua_open_async after
 * sr_lua_open_client, whose metatable it adds methods to, and
 * sr_lua_open_svcproto after sr_lua_open_json, whose buffer it uses. */
void sr_lua_open_client(lua_State *L);
void sr_lua_open_async(lua_State *L);
void sr_lua_open_stateless(lua_State *L);
void sr_lua_open_pollset(lua_State *L);
void sr_lua_open_svcproto(lua_State *L);
void sr_lua_open_ws(lua_State *L);
void sr_lua_open_sock(lua_State *L);
void sr_lua_open_json(lua_State *L);
void sr_lua_open_hubproto(lua_State *L);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
