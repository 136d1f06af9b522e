rockspec_format = "3.0"
package = "signalr-emulator"
version = "dev-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "A local Azure SignalR Service (serverless) for development and tests",
   detailed = [[
      signalr-emulator serves the Azure SignalR Service data-plane REST API
      (v1 and 2022-06-01+ routes, :generateToken, the paged group listing)
      and the client side (negotiate; WebSockets, Server-Sent Events and
      Long Polling; the JSON and MessagePack hub protocols), serverless
      upstream calls to your event handlers, with the service's status
      codes, token checks and limits, and test hooks.
      Runs on Lua 5.4 (or 5.1-5.3) with lua-http and cqueues.
   ]],
   license = "MIT",
   labels = { "signalr", "azure", "emulator", "testing" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-signalr",
   "lua-cjson",
   "http",
   "cqueues",
   "luaossl", -- the Entra ID stand-in's RS256 keys
   "lua-messagepack", -- the MessagePack hub protocol
}
build = {
   type = "builtin",
   modules = {
      ["signalr_emulator"] = "emulator/signalr_emulator/init.lua",
      ["signalr_emulator.util"] = "emulator/signalr_emulator/util.lua",
      ["signalr_emulator.auth"] = "emulator/signalr_emulator/auth.lua",
      ["signalr_emulator.hubs"] = "emulator/signalr_emulator/hubs.lua",
      ["signalr_emulator.rest"] = "emulator/signalr_emulator/rest.lua",
      ["signalr_emulator.client"] = "emulator/signalr_emulator/client.lua",
      ["signalr_emulator.filter"] = "emulator/signalr_emulator/filter.lua",
      ["signalr_emulator.entra"] = "emulator/signalr_emulator/entra.lua",
      ["signalr_emulator.upstream"] = "emulator/signalr_emulator/upstream.lua",
      ["signalr_emulator.msgpack"] = "emulator/signalr_emulator/msgpack.lua",
      ["signalr_emulator.server"] = "emulator/signalr_emulator/server.lua",
   },
   install = {
      bin = { ["signalr-emulator"] = "bin/signalr-emulator" },
   },
}
