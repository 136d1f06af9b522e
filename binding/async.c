/* async.c - the client's asynchronous mode (curl multi): submit, poll
 * and the event-loop contract (pending, timeout, fds, pollfd), added to
 * the client's methods. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <string.h>

/* Queue op with p (nul: a field holding a NUL byte) -> id | nil, msg,
 * details */
static int submit_with(lua_State *L, lclient *lc, signalr_op op,
                       const signalr_params *p, const char *nul)
{
    signalr_error e;
    unsigned long id;

    if (nul)
        return sr_lua_nul_fail(L, nul);
    if (!lc->m && signalr_multi_new(lc->c, &lc->http, &lc->retry,
                                    lc->queue_size, lc->max_connections,
                                    &lc->m, &e))
        return sr_lua_push_fail(L, &e);
    if (signalr_multi_submit(lc->m, op, p, &id, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* client:submit(op, params) -> id | nil, msg, details;
 * client:submit_send(op, hub, target, arguments, id, excluded): the same
 * for the four sends, their fields as arguments (no table per send) */
static int l_client_submit(lua_State *L)
{
    return sr_lua_client_op(L, 0, submit_with);
}

static int l_client_submit_send(lua_State *L)
{
    return sr_lua_client_op(L, 1, submit_with);
}

/* Push outcome o's value: its table (fields "status" and "body" for a
 * fetch; "error" and "details" for a failure), or in the flat form
 * (flat != 0) a successful operation's result alone: a boolean, or the
 * body of an operation that answers with data (as client:call gives
 * it). */
static void push_outcome(lua_State *L, signalr_outcome *o, int flat, box *b)
{
    /* b owns the body while it is pushed: freed even if a push raises */
    b->a = o->body;
    o->body = NULL;
    if (flat && o->rc == SIGNALR_OK && o->op != SIGNALR_OP_MAX) {
        if (b->a) {
            lua_pushlstring(L, b->a, o->body_len);
        } else {
            lua_pushboolean(L, o->value);
        }
        signalr_free(b->a);
        b->a = NULL;
        return;
    }
    lua_createtable(L, 0, 4);
    if (!flat) {
        lua_pushinteger(L, (lua_Integer)o->id);
        lua_setfield(L, -2, "id");
    }
    if (o->op == SIGNALR_OP_MAX && o->rc == SIGNALR_OK) {
        /* a fetch: its status and body */
        lua_pushinteger(L, o->status);
        lua_setfield(L, -2, "status");
        lua_pushlstring(L, b->a ? b->a : "", o->body_len);
        lua_setfield(L, -2, "body");
    } else if (o->rc == SIGNALR_OK && b->a) {
        lua_pushlstring(L, b->a, o->body_len);
        lua_setfield(L, -2, "result");
    } else if (o->rc == SIGNALR_OK) {
        lua_pushboolean(L, o->value);
        lua_setfield(L, -2, "result");
    } else {
        lua_pushstring(L, o->err.msg[0] ? o->err.msg : signalr_strerror(o->rc));
        lua_setfield(L, -2, "error");
        sr_lua_push_details(L, &o->err);
        lua_setfield(L, -2, "details");
    }
    signalr_free(b->a);
    b->a = NULL;
}

/* client:poll(timeout_s) -> array of { id, result | nil, error, details };
 * result: a boolean, or the body of an operation that answers with data.
 * client:poll(timeout_s, buf) -> n: the flat form, without a table per
 * outcome: buf[2k-1] is the k-th outcome's id, buf[2k] its value (a
 * successful operation's result; a table for a fetch or a failure, as
 * above without "id"); entries past 2n are left as they were. */
static int l_client_poll(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    long ms = (long)(luaL_optnumber(L, 2, 0) * 1000.0);
    int flat = !lua_isnoneornil(L, 3);
    signalr_outcome o;
    signalr_error e;
    int n = 0;
    box *b;

    if (flat)
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    b = sr_lua_new_box(L); /* index 4: holds a body while it is pushed */
    if (!lc->m) {
        if (flat)
            lua_pushinteger(L, 0);
        else
            lua_newtable(L);
        return 1;
    }
    if (!flat)
        lua_newtable(L);
    lc->L = L;
    if (signalr_multi_step(lc->m, ms, &e))
        return sr_lua_push_fail(L, &e);
    /* the stack has room before an outcome is popped; only an
     * out-of-memory error while pushing it could lose it */
    while (lua_checkstack(L, 4) && signalr_multi_next(lc->m, &o)) {
        if (flat) {
            lua_pushinteger(L, (lua_Integer)o.id);
            lua_rawseti(L, 3, ++n);
            push_outcome(L, &o, 1, b);
            lua_rawseti(L, 3, ++n);
        } else {
            push_outcome(L, &o, 0, b);
            lua_rawseti(L, 5, ++n);
        }
    }
    if (flat)
        lua_pushinteger(L, n / 2);
    return 1;
}

static int l_client_pending(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);

    lua_pushinteger(L, lc->m ? (lua_Integer)signalr_multi_pending(lc->m) : 0);
    return 1;
}

/* client:cancel() ends every request with ECANCELED; client:cancel(id)
 * the one (-> true, or false when it is not in flight).  The outcomes
 * come with the next poll. */
static int l_client_cancel(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);

    if (!lua_isnoneornil(L, 2)) {
        lua_Integer id = luaL_checkinteger(L, 2);

        lua_pushboolean(L, lc->m && id > 0 &&
                        signalr_multi_cancel_one(lc->m, (unsigned long)id));
        return 1;
    }
    if (lc->m)
        signalr_multi_cancel(lc->m);
    return 0;
}

/* client:timeout() -> seconds until poll is due, or nil for no timer */
static int l_client_timeout(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    long t = lc->m ? signalr_multi_timeout(lc->m) : -1;

    if (t < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, t / 1000.0);
    return 1;
}

/* client:fds() -> array of { fd = n, read = bool, write = bool }: every
 * descriptor libcurl watches, however many */
static int l_client_fds(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    int n = lc->m ? signalr_multi_fds(lc->m, NULL, NULL, 0) : 0;
    /* the arrays live in a userdata: no leak if a push raises */
    int *fds = lua_newuserdatauv(L, (size_t)(n ? 2 * n : 1) * sizeof(int), 0);
    int *ev = fds + n;

    if (n)
        n = signalr_multi_fds(lc->m, fds, ev, n);
    sr_lua_push_fds(L, fds, ev, n);
    return 1;
}

/* client:pollfd() -> the client's one pollable descriptor (epoll), or
 * nil where there is none; creates the multi handle when needed */
static int l_client_pollfd(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    signalr_error e;

    if (!lc->m && signalr_multi_new(lc->c, &lc->http, &lc->retry,
                                    lc->queue_size, lc->max_connections,
                                    &lc->m, &e))
        return sr_lua_push_fail(L, &e);
    if (signalr_multi_pollfd(lc->m) < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, signalr_multi_pollfd(lc->m));
    return 1;
}

/* client:submit_fetch(method, url, headers, body, content_type)
 * -> id | nil, msg, details; the outcome has status and body. */
static int l_client_submit_fetch(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    box *b = (lua_settop(L, 6), sr_lua_new_box(L));
    signalr_error e;
    unsigned long id;
    int r = sr_lua_build_http(L, 2, b);

    if (r)
        return r;
    if (!lc->m && signalr_multi_new(lc->c, &lc->http, &lc->retry,
                                    lc->queue_size, lc->max_connections,
                                    &lc->m, &e))
        return sr_lua_push_fail(L, &e);
    if (signalr_multi_fetch(lc->m, &b->req, &id, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

static const luaL_Reg async_methods[] = {
    {"submit", l_client_submit},
    {"submit_send", l_client_submit_send},
    {"poll", l_client_poll},
    {"pending", l_client_pending},
    {"cancel", l_client_cancel},
    {"timeout", l_client_timeout},
    {"fds", l_client_fds},
    {"pollfd", l_client_pollfd},
    {"submit_fetch", l_client_submit_fetch},
    {NULL, NULL}
};

void sr_lua_open_async(lua_State *L)
{
    luaL_getmetatable(L, CLIENT_MT);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, async_methods, 0);
    lua_pop(L, 2);
}
