-- The Lua side of bench/hub_server.sh, with AzureSignalRConnectionString
-- naming the peer (bench/hub_sim.c, bench/ws_sink.c or the emulator):
--   lua hub_server_app.lua serve [connection_count]
--     a hub server whose Add(a, b) returns a + b; runs until killed;
--   lua hub_server_app.lua send SECS
--     the reference: persistent-mode hub:broadcast("newMessage",
--     {"hello", 42}) for SECS seconds as bench/lua_send.lua sends (one
--     server connection, a poll every 64 sends); prints sends/s and the
--     CPU (user+sys of this process, os.clock) per send in microseconds.
-- HUB_PROFILE=FILE (serve): a Lua-level profile, rewritten into FILE every
-- 2 s: a count hook every 1000 VM instructions charges the CPU time
-- (os.clock) since the previous one to the function running then (C
-- functions a Lua function called are charged to it when the hook fires
-- inside it), by function and by line.  Coarse, and it costs a few %.
local signalr = require "signalr"
local core = require "signalr.core"

local what = arg[1]
local cs = os.getenv("AzureSignalRConnectionString")

-- The sampling profile of HUB_PROFILE (see above).
local function profile(path)
    local getinfo, clock = debug.getinfo, os.clock
    local by_fn, by_line, last, dumped = {}, {}, clock(), clock()
    local function dump()
        local function top(t, n)
            local list, total = {}, 0
            for k, v in pairs(t) do list[#list + 1] = { k, v }; total = total + v end
            table.sort(list, function(a, b) return a[2] > b[2] end)
            local out = {}
            for i = 1, math.min(n, #list) do
                out[i] = string.format("%5.1f%%  %s", list[i][2] / total * 100, list[i][1])
            end
            return table.concat(out, "\n")
        end
        local f = io.open(path, "w")
        if f then
            f:write("by function (where defined)\n", top(by_fn, 40), "\n\nby line\n", top(by_line, 60), "\n")
            f:close()
        end
    end
    debug.sethook(function()
        local t = clock()
        local info = getinfo(2, "Sl")
        if info then
            local fk = info.short_src .. ":" .. info.linedefined
            local lk = info.short_src .. ":" .. info.currentline
            by_fn[fk] = (by_fn[fk] or 0) + (t - last)
            by_line[lk] = (by_line[lk] or 0) + (t - last)
        end
        last = t
        if t - dumped > 2 then dumped = t; dump() end
    end, "", 1000)
end

if what == "serve" then
    if os.getenv("HUB_PROFILE") then profile(os.getenv("HUB_PROFILE")) end
    local server = assert(signalr.server {
        connection_string = cs, hub = "chat",
        connection_count = tonumber(arg[2] or "2"),
    })
    server:on("Add", function(_, a, b) return a + b end)
    server:run()
elseif what == "send" then
    local secs = assert(tonumber(arg[2]), "usage: send SECS")
    local ARGS = { "hello", 42 }
    local failed = 0
    local client = assert(signalr.new { connection_string = cs, mode = "persistent",
        server_timeout = 600, on_done = function(r) if r.error then failed = failed + 1 end end })
    local hub = client:hub("chat")
    assert(hub:broadcast("newMessage", ARGS)) -- opens the connection
    assert(client:flush(10))
    local n, t0, c0 = 0, core.monotonic(), os.clock()
    while core.monotonic() - t0 < secs do
        for _ = 1, 64 do
            if hub:broadcast("newMessage", ARGS) ~= true then failed = failed + 1 end
        end
        n = n + 64
        local _, bytes = client:pending()
        client:poll(bytes > 1024 * 1024 and 0.001 or 0)
    end
    assert(client:flush(30))
    client:close()
    assert(failed == 0, failed .. " sends failed")
    print(string.format("%.1f %.2f", n / (core.monotonic() - t0), (os.clock() - c0) / n * 1e6))
else
    io.stderr:write("usage: lua hub_server_app.lua serve [connection_count] | send SECS\n")
    os.exit(2)
end
