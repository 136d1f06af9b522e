/* async.c - the client's asynchronous mode (curl multi): submit, poll
 * and the event-loop contract (pending, timeout, fds, pollfd), added to
 * the client's methods. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <string.h>

/* client:submit(op, params) -> id | nil, msg, details */
static int l_client_submit(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    signalr_op op = sr_lua_check_op(L, 2);
    signalr_params p;
    signalr_error e;
    unsigned long id;
    const char *nul = sr_lua_read_params(L, 3, &p);

    if (nul)
        return sr_lua_nul_fail(L, nul);
    if (!lc->m && signalr_multi_new(lc->c, &lc->http, &lc->retry,
                                    lc->queue_size, lc->max_connections,
                                    &lc->m, &e))
        return sr_lua_push_fail(L, &e);
    if (signalr_multi_submit(lc->m, op, &p, &id, &e))
        return sr_lua_push_fail(L, &e);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* client:poll(timeout_s) -> array of { id, result | nil, error, details };
 * result: a boolean, or the body of an operation that answers with data */
static int l_client_poll(lua_State *L)
{
    lclient *lc = sr_lua_check_client(L);
    long ms = (long)(luaL_optnumber(L, 2, 0) * 1000.0);
    signalr_outcome o;
    signalr_error e;
    int n = 0;

    lua_newtable(L);
    if (!lc->m)
        return 1;
    lc->L = L;
    if (signalr_multi_step(lc->m, ms, &e))
        return sr_lua_push_fail(L, &e);
    /* each outcome's table exists before the outcome is popped; only an
     * out-of-memory error while filling it could lose one */
    while (lua_checkstack(L, 4)) {
        lua_createtable(L, 0, 4);
        if (!signalr_multi_next(lc->m, &o)) {
            lua_pop(L, 1);
            break;
        }
        lua_pushinteger(L, (lua_Integer)o.id);
        lua_setfield(L, -2, "id");
        if (o.op == SIGNALR_OP_MAX && o.rc == SIGNALR_OK) {
            /* a fetch: its status and body (the table exists already, so
             * only an out-of-memory error here could lose the body) */
            lua_pushinteger(L, o.status);
            lua_setfield(L, -2, "status");
            lua_pushlstring(L, o.body ? o.body : "", o.body_len);
            signalr_free(o.body);
            lua_setfield(L, -2, "body");
        } else if (o.rc == SIGNALR_OK && o.body) {
            /* an operation that answers with data: its body is the
             * result, as client:call gives it */
            lua_pushlstring(L, o.body, o.body_len);
            signalr_free(o.body);
            lua_setfield(L, -2, "result");
        } else if (o.rc == SIGNALR_OK) {
            lua_pushboolean(L, o.value);
            lua_setfield(L, -2, "result");
        } else {
            lua_pushstring(L, o.err.msg[0] ? o.err.msg
                                           : signalr_strerror(o.rc));
            lua_setfield(L, -2, "error");
            sr_lua_push_details(L, &o.err);
            lua_setfield(L, -2, "details");
        }
        lua_rawseti(L, -2, ++n);
    }
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
