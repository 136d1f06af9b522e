-- A 60 Hz game loop that sends per-tick state to groups and users without
-- stalling ticks (async mode), then prints tick-time percentiles.
-- lua5.4 examples/game_loop.lua [seconds]  (AzureSignalRConnectionString set)
local signalr = require "signalr"
local core = require "signalr.core" -- only for its monotonic clock

local failed = 0
local client = assert(signalr.new {
    connection_string = os.getenv("AzureSignalRConnectionString"),
    async = true, queue_size = 4096,
    on_done = function(req) if req.error then failed = failed + 1 end end,
})
local hub = assert(client:hub("game"))
for p = 1, 8 do assert(hub:add_user_to_group("player" .. p, p <= 4 and "red" or "blue")) end
assert(client:flush(5))

local TICK, seconds = 1 / 60, tonumber(arg[1]) or 3
local ticks, times, sent = math.floor(seconds / TICK), {}, 0
local next_tick = core.monotonic()
for t = 1, ticks do
    local t0 = core.monotonic()
    -- the game's work, then this tick's state out: 2 groups + 1 user
    for _, team in ipairs { "red", "blue" } do
        assert(hub:to_group(team, "state", { t, team, { x = t % 100, y = 50 } }))
    end
    assert(hub:to_user("player" .. (t % 8 + 1), "whisper", { t }))
    sent = sent + 3
    client:step() -- progress without waiting
    times[t] = core.monotonic() - t0
    next_tick = next_tick + TICK
    -- sleep until the next tick while the network makes progress
    local wait = next_tick - core.monotonic()
    if wait > 0 then client:poll(wait) end
end
assert(client:flush(10))
table.sort(times)
local function pct(p) return times[math.max(1, math.floor(#times * p))] * 1000 end
print(string.format("%d ticks at 60 Hz, %d sends (%d failed); tick work p50 %.3f ms,"
    .. " p99 %.3f ms, max %.3f ms (budget %.1f ms)", ticks, sent, failed, pct(0.5),
    pct(0.99), times[#times] * 1000, TICK * 1000))
