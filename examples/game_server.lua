-- An authoritative game server at 20 Hz: a hub server (Default mode) that
-- keeps the world.  Clients call Join(room, name) (the answer is the
-- room's state) and send Move(dx, dy) (|dx|, |dy| <= 1; up to 8 wait, one
-- is applied per tick); every tick the server applies the moves and
-- pushes `state` to each room's group.
--   lua5.4 examples/game_server.lua [--luv] [--seconds N]
-- with Azure__SignalR__ConnectionString (or AzureSignalRConnectionString)
-- set; `make demo-server` runs it with two real JS clients.
local signalr = require "signalr"
local now = require("signalr.core").monotonic

local function fail(msg) io.stderr:write("game_server: ", msg, "\n") os.exit(2) end
local use_luv, seconds = false, nil
local i = 1
while arg[i] do
    if arg[i] == "--luv" then use_luv = true
    elseif arg[i] == "--seconds" and tonumber(arg[i + 1]) then i = i + 1; seconds = tonumber(arg[i])
    else fail("usage: lua game_server.lua [--luv] [--seconds N]") end
    i = i + 1
end
io.stdout:setvbuf("line")

local cs = os.getenv("Azure__SignalR__ConnectionString")
if (cs or "") == "" then cs = os.getenv("AzureSignalRConnectionString") end
if (cs or "") == "" then fail("set Azure__SignalR__ConnectionString (or AzureSignalRConnectionString)") end
local server, err = signalr.server { connection_string = cs, hub = "game", connection_count = 2 }
if not server then fail(err) end
local game = server:hub("game")

local HZ, SIZE, QUEUE = 20, 100, 8        -- ticks a second; the world is SIZE x SIZE
local TICK = 1 / HZ
local rooms = {}                          -- room -> { players = { ctx, ... } }
local ticks, moved, rejected, failed, worst = 0, 0, 0, 0, 0

local function state_of(room)
    local list = {}
    for _, ctx in ipairs(rooms[room].players) do
        local p = ctx.items
        list[#list + 1] = { name = p.name, x = p.x, y = p.y }
    end
    return { room = room, tick = ticks, players = list }
end

local function leave(ctx)
    local room = ctx.items.room
    if not room then return end
    ctx.items.room = nil
    local players = rooms[room].players
    for k, other in ipairs(players) do
        if other == ctx then table.remove(players, k) break end
    end
    if #players == 0 then rooms[room] = nil end
    print(("game_server: %s left %s"):format(ctx.items.name, room))
end

server:on("Join", function(ctx, room, name)
    if type(room) ~= "string" or type(name) ~= "string" or #name == 0 or #name > 32 then
        error(signalr.hub_error "Join(room, name): two strings, a name of 1 to 32 bytes")
    end
    if ctx.items.room == room then return state_of(room) end
    local ok, msg = ctx:join(room)       -- waits for the service's ack
    if not ok then error(signalr.hub_error("cannot join '" .. room .. "': " .. tostring(msg))) end
    if ctx.items.gone then return nil end -- it left while we waited
    if ctx.items.room then -- another room: leave it, start over in this one
        ctx:leave(ctx.items.room)
        leave(ctx)
    end
    local r = rooms[room] or { players = {} }
    rooms[room] = r
    local p = ctx.items
    p.room, p.name, p.x, p.y, p.moves = room, name, 10 * (#r.players + 1), 10, {}
    r.players[#r.players + 1] = ctx
    print(("game_server: %s joined %s (%s, %s)"):format(name, room, ctx.connection_id, ctx.protocol))
    return state_of(room)
end)

-- a client's send("Move", dx, dy): no answer; an invoke of a bad move
-- gets the hub error, a send of one is dropped
server:on("Move", function(ctx, dx, dy)
    if type(dx) ~= "number" or type(dy) ~= "number"
        or not (math.abs(dx) <= 1 and math.abs(dy) <= 1) then -- also NaN
        rejected = rejected + 1
        error(signalr.hub_error "Move(dx, dy): numbers from -1 to 1")
    end
    local p = ctx.items
    if not p.room then error(signalr.hub_error "Join a room first") end
    if #p.moves < QUEUE then p.moves[#p.moves + 1] = { dx, dy } end -- else dropped
end)

server:on_disconnected(function(ctx)
    ctx.items.gone = true
    leave(ctx)
end)

local function clamp(v) return math.max(0, math.min(SIZE, v)) end

local function report()
    local players, n = 0, 0
    for _, r in pairs(rooms) do players, n = players + #r.players, n + 1 end
    print(("game_server: tick %d: %d player(s) in %d room(s); %d moves applied, %d rejected, %d state"
        .. " sends failed; slowest tick %.2f ms"):format(ticks, players, n, moved, rejected, failed,
        worst * 1000))
end

-- one tick: apply the moves, then each room's state to its group
local function tick()
    local t0 = now()
    ticks = ticks + 1
    for room, r in pairs(rooms) do
        for _, ctx in ipairs(r.players) do
            local p = ctx.items
            local m = table.remove(p.moves, 1)
            if m then
                p.x, p.y = clamp(p.x + m[1]), clamp(p.y + m[2])
                moved = moved + 1
            end
        end
        local ok, msg = game:to_group(room, "state", { state_of(room) })
        if not ok then
            failed = failed + 1
            io.stderr:write("game_server: state to ", room, " failed: ", tostring(msg), "\n")
        end
    end
    worst = math.max(worst, now() - t0)
    if ticks % 40 == 0 then report() end -- every 2 s
end

print(("game_server: hub 'game' at %d Hz (%s loop)%s"):format(HZ, use_luv and "luv" or "poll",
    seconds and (", for " .. seconds .. " s") or ""))
local started = now()
if use_luv then
    local uv = require "luv"
    require("signalr.loop.luv").attach(server, uv)
    local timer = uv.new_timer()
    timer:start(TICK * 1000, TICK * 1000, function()
        tick()
        if seconds and now() - started >= seconds then uv.stop() end
    end)
    uv.run()
    timer:close()
    server:close()
    uv.run("nowait") -- let the closes complete
else
    local next_tick = now() + TICK
    while not seconds or now() - started < seconds do
        local wait = next_tick - now()
        if wait > 0 then
            server:poll(wait) -- the network and handlers until the tick is due
        else
            tick()
            next_tick = next_tick + TICK
            if now() - next_tick > 1 then next_tick = now() + TICK end -- far behind: skip
        end
    end
    server:close()
end
report()
print(("game_server: stopped after %.1f s"):format(now() - started))
