-- Per-send CPU in Lua (JSON of the arguments + the core's sign and build)
-- and memory per client and per hub object.  argv: iterations
local signalr = require "signalr"
local json = require "signalr.json"
local core = require "signalr.core"
local N = tonumber(arg[1] or "200000")
local CS = "Endpoint=https://x.service.signalr.net;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
-- a 100-byte payload
local ARGS = { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" }, "0123456789abcde" }
local c = assert(core.client(CS))
local function bench(label, user_of)
    local t0 = core.monotonic()
    for i = 1, N do
        local text = json.encode_args(ARGS)
        assert(c:build("to_user", { hub = "chat", user = user_of(i), target = "newMessage", arguments = text }))
    end
    print(string.format("%s: %.2f us per send", label, (core.monotonic() - t0) / N * 1e6))
end
print("payload bytes: " .. #json.encode_args(ARGS))
bench("json + build, cached token (same user)", function() return "u1" end)
bench("json + build + sign (a new user each time)", function(i) return "u" .. i end)

local function rss_kb()
    local f = io.open("/proc/self/statm")
    local pages = f:read("*n")
    pages = f:read("*n")
    f:close()
    return pages * 4
end
collectgarbage()
local r0, clients = rss_kb(), {}
for i = 1, 1000 do clients[i] = assert(signalr.new(CS)) end
collectgarbage()
print(string.format("resident memory per client: %.1f KiB", (rss_kb() - r0) / 1000))
local hubs, k0 = {}, collectgarbage("count")
for i = 1, 10000 do hubs[i] = clients[1]:hub("hub" .. i) end
print(string.format("Lua heap per hub object: %.0f bytes", (collectgarbage("count") - k0) * 1024 / 10000))
