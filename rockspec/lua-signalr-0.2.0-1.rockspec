rockspec_format = "3.0"
package = "lua-signalr"
version = "0.2.0-1"
-- The release: `make dist` writes the source tarball this names, and its
-- .src.rock and a binary rock; publish the tarball and set the URL.
source = {
   url = "lua-signalr-0.2.0.tar.gz",
   dir = "lua-signalr-0.2.0",
}
description = {
   summary = "Azure SignalR Service REST client for Lua and OpenResty",
   detailed = [[
      Hub objects for the Azure SignalR Service data-plane REST API
      (broadcast, users, groups, connections, existence checks, closing
      connections, client tokens) and client negotiate tokens, on a
      portable C core (HS256 JWT, URLs, validation, libcurl).  Works
      inside nginx (cosockets) and in game loops (async libcurl).
   ]],
   license = "MIT",
   labels = { "signalr", "azure", "websocket", "openresty" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson",
}
external_dependencies = {
   -- headers are found by the compiler (Debian keeps curl's in a
   -- multiarch directory, which a header check would miss)
   CURL = { library = "curl" },
   OPENSSL = { header = "openssl/hmac.h", library = "crypto" },
   -- WebSocket framing of persistent mode's server connections
   WSLAY = { header = "wslay/wslay.h", library = "wslay" },
}
build = {
   type = "builtin",
   -- the C sources live outside lua/, so nothing but modules lands in
   -- share/lua; symbol visibility is set in core/src/internal.h
   modules = {
      ["signalr.core"] = {
         sources = {
            "core/src/buf.c", "core/src/connstr.c", "core/src/error.c",
            "core/src/http_curl.c", "core/src/http_lean.c", "core/src/http_multi.c", "core/src/http_reply.c", "core/src/jwt.c", "core/src/jwt_verify.c",
            "core/src/ops.c", "core/src/pollset.c", "core/src/reply.c", "core/src/request.c",
            "core/src/retry.c", "core/src/sock.c", "core/src/svcproto.c",
            "core/src/mpack.c", "core/src/json_mpack.c", "core/src/hubproto.c",
            "core/src/client.c", "core/src/http_request.c", "core/src/negotiate.c",
            "core/src/upstream.c", "core/src/ws.c", "core/src/url.c", "core/src/validate.c",
            "binding/signalr_core.c", "binding/helpers.c", "binding/params.c",
            "binding/client.c", "binding/async.c", "binding/stateless.c",
            "binding/pollset.c", "binding/svcproto.c", "binding/ws.c", "binding/sock.c",
            "binding/json_text.c", "binding/json.c", "binding/hubproto.c",
         },
         incdirs = { "core/include", "core/src", "$(OPENSSL_INCDIR)", "$(WSLAY_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(WSLAY_LIBDIR)" },
         libraries = { "curl", "crypto", "wslay" },
         defines = { "_POSIX_C_SOURCE=200809L" },
      },
      ["signalr"] = "lua/signalr/init.lua",
      ["signalr.client"] = "lua/signalr/client.lua",
      ["signalr.options"] = "lua/signalr/options.lua",
      ["signalr.request"] = "lua/signalr/request.lua",
      ["signalr.util"] = "lua/signalr/util.lua",
      ["signalr.hub"] = "lua/signalr/hub.lua",
      ["signalr.json"] = "lua/signalr/json.lua",
      ["signalr.auth"] = "lua/signalr/auth.lua",
      ["signalr.auth.credential"] = "lua/signalr/auth/credential.lua",
      ["signalr.endpoints"] = "lua/signalr/endpoints.lua",
      ["signalr.transport"] = "lua/signalr/transport/init.lua",
      ["signalr.transport.base"] = "lua/signalr/transport/base.lua",
      ["signalr.transport.curl"] = "lua/signalr/transport/curl.lua",
      ["signalr.transport.async"] = "lua/signalr/transport/async.lua",
      ["signalr.transport.ngx"] = "lua/signalr/transport/ngx.lua",
      ["signalr.transport.persistent"] = "lua/signalr/transport/persistent/init.lua",
      ["signalr.transport.persistent.conn"] = "lua/signalr/transport/persistent/conn.lua",
      ["signalr.transport.persistent.pool"] = "lua/signalr/transport/persistent/pool.lua",
      ["signalr.transport.persistent.ngx"] = "lua/signalr/transport/persistent/ngx.lua",
      -- MessagePack upstream bodies load lua-messagepack when one arrives
      -- (optional: JSON clients need nothing more)
      ["signalr.upstream"] = "lua/signalr/upstream.lua",
      ["signalr.loop"] = "lua/signalr/loop/init.lua",
      ["signalr.loop.luv"] = "lua/signalr/loop/luv.lua",
      ["signalr.loop.cqueues"] = "lua/signalr/loop/cqueues.lua",
      ["signalr.actions"] = "lua/signalr/actions.lua",
      ["signalr.cli"] = "lua/signalr/cli.lua",
      ["signalr.server"] = "lua/signalr/server/init.lua",
      ["signalr.server.dispatch"] = "lua/signalr/server/dispatch.lua",
      ["signalr.server.session"] = "lua/signalr/server/session.lua",
      ["signalr.server.context"] = "lua/signalr/server/context.lua",
      ["signalr.server.sched"] = "lua/signalr/server/sched.lua",
      ["signalr.server.sched_ngx"] = "lua/signalr/server/sched_ngx.lua",
   },
   install = {
      bin = { ["signalr"] = "bin/signalr" },
   },
   -- LuaLS annotations, kept in the rock's folder (not on package.path)
   copy_directories = { "types" },
}
