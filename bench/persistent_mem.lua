-- Persistent mode's memory for bench/persistent.sh (resident set from
-- /proc/self/statm).  AzureSignalRConnectionString names bench/ws_sink.c;
-- SINK_PID is its process, stopped (SIGSTOP) to hold frames back.
-- argv: waiting   -> KiB for 10k sends queued while the connection waits
--                    for its handshake (the sink is stopped before it)
--       unwritten -> KiB for 10k sends on an open connection the network
--                    does not take (the sink is stopped after the handshake)
--       soak N    -> RSS in KiB after every N/10 sends of N (polling every
--                    64 sends, as bench/lua_send.lua does)
local signalr = require "signalr"
local what, n = arg[1], tonumber(arg[2] or "0")
local cs = os.getenv("AzureSignalRConnectionString")
local sink = assert(os.getenv("SINK_PID"), "SINK_PID")
local ARGS = { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" }, "0123456789abcde" }

local function rss_kb()
    local f = assert(io.open("/proc/self/statm"))
    f:read("*n")
    local pages = f:read("*n")
    f:close()
    return pages * 4
end
local function settle() collectgarbage() collectgarbage() end
local function signal(sig) assert(os.execute("kill -" .. sig .. " " .. sink)) end

local function client(o)
    o = o or {}
    o.connection_string, o.mode, o.server_timeout = cs, "persistent", 600
    return assert(signalr.new(o))
end

if what == "waiting" then
    -- the first hub's set-up is not counted: it opens and sends first
    local warm = client { queue_size = 20000, handshake_timeout = 60 }
    assert(warm:hub("warm"):broadcast("newMessage", ARGS))
    assert(warm:flush(10))
    signal("STOP")
    local c = client { queue_size = 20000, handshake_timeout = 60 }
    local hub = c:hub("chat")
    settle()
    local r0 = rss_kb()
    for _ = 1, 10000 do assert(hub:broadcast("newMessage", ARGS)) end
    local queued = c:status().hubs.chat.queued
    local r1 = rss_kb()
    signal("CONT")
    assert(queued == 10000, "not all were queued: " .. queued)
    print(string.format("%.0f", r1 - r0))
    os.exit(0) -- the stopped connection's handshake is not waited for
elseif what == "unwritten" then
    local c = client()
    local hub = c:hub("chat")
    for _ = 1, 64 do assert(hub:broadcast("newMessage", ARGS)) end
    assert(c:flush(10))
    signal("STOP")
    -- what the kernel's socket buffers take first is not the library's
    for _ = 1, 20000 do assert(hub:broadcast("newMessage", ARGS)) end
    c:poll(0.05)
    settle()
    local r0 = rss_kb()
    for _ = 1, 10000 do assert(hub:broadcast("newMessage", ARGS)) end
    c:poll(0)
    local _, bytes = c:pending()
    local r1 = rss_kb()
    signal("CONT")
    assert(bytes > 10000 * 100, "the network took them: " .. bytes)
    assert(c:flush(30))
    print(string.format("%.0f", r1 - r0))
    c:close()
else
    local c = client()
    local hub = c:hub("chat")
    assert(hub:broadcast("newMessage", ARGS)) -- opens the connection
    assert(c:flush(10))
    local out, step = {}, n // 10
    local i = 0
    while i < n do
        for _ = 1, 64 do assert(hub:broadcast("newMessage", ARGS) == true) end
        i = i + 64
        local _, bytes = c:pending()
        c:poll(bytes > 1024 * 1024 and 0.001 or 0)
        if i % step < 64 then
            assert(c:flush(10))
            settle()
            out[#out + 1] = rss_kb()
        end
    end
    assert(c:flush(30))
    c:close()
    print(table.concat(out, " "))
end
