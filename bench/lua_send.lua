-- lua-signalr sends for the benchmarks.  argv: mode (blocking|async|
-- persistent) seconds [in_flight [op]].  AzureSignalRConnectionString names
-- the sink.  op (persistent mode): broadcast (default), to_group or to_user.
-- Prints sends/s and the CPU (user+sys of this process, os.clock) per
-- send in microseconds.  SENDS=N in the environment (blocking and async):
-- exactly N sends instead of `seconds` (bench/rest_ir.sh).
local signalr = require "signalr"
local core = require "signalr.core"
local mode, secs, inflight, op = arg[1], tonumber(arg[2]), tonumber(arg[3] or "16"), arg[4] or "broadcast"
local ARGS = { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" }, "0123456789abcde" }
local cs = os.getenv("AzureSignalRConnectionString")
local limit = tonumber(os.getenv("SENDS") or "")
local n, failed, t0, c0 = 0, 0, core.monotonic(), os.clock()
if mode == "blocking" then
    local hub = assert(signalr.new { connection_string = cs, retries = 0 }):hub("chat")
    while (limit and n < limit) or (not limit and core.monotonic() - t0 < secs) do
        assert(hub:broadcast("newMessage", ARGS))
        n = n + 1
    end
elseif mode == "persistent" then
    -- server connections: sends return once the frame is on the
    -- connection; poll writes what the socket did not take at once
    local client = assert(signalr.new { connection_string = cs, mode = "persistent",
        server_timeout = 600, on_done = function(r) if r.error then failed = failed + 1 end end })
    local hub = client:hub("chat")
    -- 64 of the same message to everyone, to a group, to a user: the
    -- count that failed
    local batch = ({
        broadcast = function(k)
            local f = 0
            for _ = 1, k do if hub:broadcast("newMessage", ARGS) ~= true then f = f + 1 end end
            return f
        end,
        to_group = function(k)
            local f = 0
            for _ = 1, k do if hub:to_group("group1", "newMessage", ARGS) ~= true then f = f + 1 end end
            return f
        end,
        to_user = function(k)
            local f = 0
            for _ = 1, k do if hub:to_user("user1", "newMessage", ARGS) ~= true then f = f + 1 end end
            return f
        end,
    })[op]
    assert(batch, "op: broadcast, to_group or to_user")
    assert(hub:broadcast("newMessage", ARGS)) -- opens the connection
    assert(client:flush(10))
    n, t0, c0 = 0, core.monotonic(), os.clock()
    while core.monotonic() - t0 < secs do
        failed = failed + batch(64)
        n = n + 64
        local _, bytes = client:pending()
        client:poll(bytes > 1024 * 1024 and 0.001 or 0)
    end
    assert(client:flush(30))
    client:close()
else
    local client = assert(signalr.new { connection_string = cs, async = true, retries = 0,
        max_connections = inflight, queue_size = inflight * 2,
        on_done = function(r) if r.error then failed = failed + 1 end end })
    local hub = client:hub("chat")
    while (limit and n < limit) or (not limit and core.monotonic() - t0 < secs) do
        while client:pending() < inflight * 2 and not (limit and n >= limit) do
            assert(hub:broadcast("newMessage", ARGS))
            n = n + 1
        end
        client:poll(0.01)
    end
    assert(client:flush(10))
end
assert(failed == 0, failed .. " sends failed")
print(string.format("%.1f %.2f", n / (core.monotonic() - t0), (os.clock() - c0) / n * 1e6))
