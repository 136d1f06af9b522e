-- Instructions per REST send for bench/rest_ir.sh (under callgrind): N
-- sends of `hub:broadcast` to the sink named by
-- AzureSignalRConnectionString, as bench/lua_send.lua sends them.
-- argv: async|blocking N
local signalr = require "signalr"
local ARGS = { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" }, "0123456789abcde" }
local mode, N = arg[1], tonumber(arg[2])
local cs = os.getenv("AzureSignalRConnectionString")
local n, failed = 0, 0
if mode == "blocking" then
    local hub = assert(signalr.new { connection_string = cs, retries = 0 }):hub("chat")
    for _ = 1, N do assert(hub:broadcast("newMessage", ARGS)) end
else
    local inflight = 16
    local client = assert(signalr.new { connection_string = cs, async = true, retries = 0,
        max_connections = inflight, queue_size = inflight * 2,
        on_done = function(r) if r.error then failed = failed + 1 end end })
    local hub = client:hub("chat")
    while n < N do
        while client:pending() < inflight * 2 and n < N do
            assert(hub:broadcast("newMessage", ARGS))
            n = n + 1
        end
        client:poll(0.01)
    end
    assert(client:flush(10))
end
assert(failed == 0, failed .. " sends failed")
