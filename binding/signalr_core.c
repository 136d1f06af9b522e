/* signalr_core.c - luaopen_signalr_core: registers what the other files
 * of the private `signalr.core` module define (see binding.h), and the
 * module's constants. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <curl/curl.h>

int luaopen_signalr_core(lua_State *L);

__attribute__((visibility("default"))) int luaopen_signalr_core(lua_State *L)
{
    int i;

    /* refcounted by curl; thread-safe from curl 7.84 on */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "signalr.core: curl_global_init failed");
    sr_lua_open_helpers(L);
    lua_newtable(L);
    sr_lua_open_json(L); /* first: client and svcproto share its buffer */
    sr_lua_open_client(L);
    sr_lua_open_async(L);
    sr_lua_open_stateless(L);
    sr_lua_open_pollset(L);
    sr_lua_open_svcproto(L);
    sr_lua_open_ws(L);
    sr_lua_open_sock(L);
    sr_lua_open_hubproto(L);
    lua_createtable(L, SIGNALR_OP_MAX, 0);
    for (i = 0; i < SIGNALR_OP_MAX; i++) {
        lua_pushstring(L, signalr_op_name((signalr_op)i));
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "operations");
    lua_pushinteger(L, SIGNALR_MAX_BODY);
    lua_setfield(L, -2, "MAX_BODY");
    lua_pushliteral(L, SIGNALR_VERSION);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
