-- A 60 Hz game loop that sends per-tick state to groups and users without
-- stalling ticks (async mode, or persistent mode's server connection),
-- then prints tick-time percentiles.
-- lua5.4 examples/game_loop.lua [seconds] [own|luv|cqueues] [async|persistent]
-- (AzureSignalRConnectionString set).  "own" is the loop below; "luv" and
-- "cqueues" drive the same ticks from those event loops, with the
-- client attached through signalr.loop.luv / signalr.loop.cqueues.
local signalr = require "signalr"
local core = require "signalr.core" -- only for its monotonic clock

local failed = 0
local mode = arg[3] or "async"
local client = assert(signalr.new {
    connection_string = os.getenv("AzureSignalRConnectionString"),
    async = mode == "async" or nil, mode = mode == "persistent" and "persistent" or nil,
    queue_size = 4096,
    on_done = function(req) if req.error then failed = failed + 1 end end,
})
local hub = assert(client:hub("game"))
for p = 1, 8 do assert(hub:add_user_to_group("player" .. p, p <= 4 and "red" or "blue")) end
assert(client:flush(5))

local TICK, seconds, loop = 1 / 60, tonumber(arg[1]) or 3, arg[2] or "own"
local ticks, times, sent = math.floor(seconds / TICK), {}, 0

-- one tick: the game's work, then this tick's state out (2 groups + 1 user)
local function tick(t)
    local t0 = core.monotonic()
    for _, team in ipairs { "red", "blue" } do
        assert(hub:to_group(team, "state", { t, team, { x = t % 100, y = 50 } }))
    end
    assert(hub:to_user("player" .. (t % 8 + 1), "whisper", { t }))
    sent = sent + 3
    if loop == "own" then client:step() end -- progress without waiting
    times[t] = core.monotonic() - t0
end

if loop == "own" then
    local next_tick = core.monotonic()
    for t = 1, ticks do
        tick(t)
        next_tick = next_tick + TICK
        -- sleep until the next tick while the network makes progress
        local wait = next_tick - core.monotonic()
        if wait > 0 then client:poll(wait) end
    end
    assert(client:flush(10))
elseif loop == "luv" then
    local uv = require "luv"
    require("signalr.loop.luv").attach(client, uv)
    local t, timer = 0, uv.new_timer()
    timer:start(0, math.floor(TICK * 1000 + 0.5), function()
        if t < ticks then
            t = t + 1
            tick(t)
        elseif client:pending() == 0 then
            timer:stop()
            uv.stop()
        end
    end)
    uv.run()
    timer:close()
    client:close()
    uv.run("nowait")
elseif loop == "cqueues" then
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local handle = require("signalr.loop.cqueues").attach(client, cq)
    cq:wrap(function()
        local next_tick = cqueues.monotime()
        for t = 1, ticks do
            tick(t)
            next_tick = next_tick + TICK
            cqueues.sleep(math.max(0, next_tick - cqueues.monotime()))
        end
        while client:pending() > 0 do cqueues.sleep(0.01) end
        handle.detach()
    end)
    assert(cq:loop())
    client:close()
else
    error("unknown loop '" .. loop .. "': own, luv or cqueues")
end
table.sort(times)
local function pct(p) return times[math.max(1, math.floor(#times * p))] * 1000 end
print(string.format("%d ticks at 60 Hz (%s loop), %d sends (%d failed); tick work p50 %.3f ms,"
    .. " p99 %.3f ms, max %.3f ms (budget %.1f ms)%s", ticks, loop, sent, failed, pct(0.5),
    pct(0.99), times[#times] * 1000, TICK * 1000, mode == "persistent" and ", persistent" or ""))
