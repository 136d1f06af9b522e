-- The Lua side of bench/hub_load.sh: a hub server (hub "chat") for the
-- load test, with AzureSignalRConnectionString naming the emulator.
--   Add(a, b)   returns a + b (the invoking clients' call);
--   Subscribe() a feed to the caller: 64 KB every 10 ms for as long as it
--               is connected (what a client that stops reading chokes on);
--   STATE_HZ times a second (0: never) a small state broadcast to
--               everyone (a game's tick); FEED_KB sizes the feed.
-- Prints "disconnected <connection id> <why>" when a client goes away
-- with an error, and "ready" once serving.  Runs until killed.
local signalr = require "signalr"
local core = require "signalr.core"

local server = assert(signalr.server {
    connection_string = os.getenv("AzureSignalRConnectionString"), hub = "chat",
    connection_count = tonumber(arg[1] or "4"),
})
local chat = server:hub("chat")
local BLOB

server:on("Add", function(_, a, b) return a + b end)
-- FEED_KB: the feed's message size (64; 0: no feed)
local feed_kb = tonumber(os.getenv("FEED_KB") or "64")
BLOB = string.rep("x", feed_kb * 1024)
server:on("Subscribe", function(ctx)
    if feed_kb == 0 then return 0 end
    local n = 0
    while true do
        n = n + 1
        if not ctx:send("feed", n, BLOB) then return n end
        ctx:await(function() return false end, 0.01)
    end
end)
server:on_disconnected(function(ctx, err)
    if err then
        io.stdout:write("disconnected ", ctx.connection_id, " ", tostring(err), "\n")
        io.stdout:flush()
    end
end)

print("ready")
io.stdout:flush()
-- STATE_HZ: broadcasts a second (0: none)
local hz = tonumber(os.getenv("STATE_HZ") or "0")
local tick, next_tick, now = 0, core.monotonic(), core.monotonic
while true do
    server:poll(0.005)
    if hz > 0 and now() >= next_tick then
        tick = tick + 1
        next_tick = next_tick + 1 / hz
        chat:broadcast("state", { tick, "x", 1, 2, 3 })
    end
end
