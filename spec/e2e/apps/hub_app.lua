-- A hub server for spec/e2e/hub_server_spec.lua: a small game hub behind
-- the emulator (Default mode).  Usage: lua hub_app.lua LOG [luv|poll]
-- with AzureSignalRConnectionString in the environment; it writes one
-- line per lifecycle event to LOG and runs until killed.
local signalr = require "signalr"

local log_path, loop = arg[1], arg[2] or "run"
local log = assert(io.open(log_path, "a"))
local function note(...)
    log:write(table.concat({ ... }, " "), "\n")
    log:flush()
end

-- HUB_ENDPOINTS ("cs1|cs2"): several endpoints instead of one
local endpoints
if os.getenv "HUB_ENDPOINTS" then
    endpoints = {}
    for cs in os.getenv("HUB_ENDPOINTS"):gmatch("[^|]+") do
        endpoints[#endpoints + 1] = { connection_string = cs, name = "e" .. (#endpoints + 1) }
    end
end
local server = assert(signalr.server {
    connection_string = not endpoints and os.getenv "AzureSignalRConnectionString" or nil,
    endpoints = endpoints,
    hub = "chat",
    connection_count = 2,
    detailed_errors = os.getenv "HUB_DETAILED" == "1",
})
local chat = server:hub("chat")

server:on_connected(function(ctx)
    note("connected", ctx.connection_id, ctx.user_id or "-", ctx.protocol)
    ctx.items.moves = 0
    assert(ctx:send("newMessage", "welcome", ctx.user_id or "anonymous"))
end)
server:on_disconnected(function(ctx, err)
    note("disconnected", ctx.connection_id, err and "error" or "clean")
end)

server:on("Add", function(_, a, b) return a + b end)
server:on("Echo", function(_, v) return v end)
server:on("Whoami", function(ctx)
    return { id = ctx.connection_id, user = ctx.user_id, protocol = ctx.protocol,
             moves = ctx.items.moves }
end)
server:on("Move", function(ctx, dx, dy)
    if type(dx) ~= "number" or type(dy) ~= "number" or math.abs(dx) > 1 or math.abs(dy) > 1 then
        error(signalr.hub_error "bad move")
    end
    ctx.items.moves = ctx.items.moves + 1
    return { x = dx, y = dy, n = ctx.items.moves }
end)
server:on("Boom", function() error("a secret detail") end)
server:on("Nothing", function() end)
server:on("Shout", function(ctx, text)
    -- a client's send: no completion; everyone hears it
    assert(chat:broadcast("newMessage", { "shout", ctx.user_id or "-", text }))
end)
server:on("JoinRoom", function(ctx, room)
    assert(ctx:join(room))
    assert(chat:to_group(room, "newMessage", { "joined", room, ctx.user_id or "-" }))
    return true
end)
server:on("Slow", function(ctx, secs)
    local t0 = os.clock()
    ctx:await(function() return false end, secs) -- lets other clients' calls go on
    return os.clock() - t0 >= 0
end)
server:on("Bye", function(ctx) ctx:close() end)
server:on("AskInput", function(ctx, n)
    -- a client result: the client's GetInput handler answers
    local v, msg, d = ctx:invoke("GetInput", n)
    if v == nil then return { error = msg, code = d.code } end
    return { value = v }
end)
server:on("Count", function(_, n)
    local i = 0
    return signalr.stream(function()
        i = i + 1
        if i <= n then return i end
    end)
end)
server:on("Ticks", function(ctx)
    -- an endless stream, a tick per 20 ms, until the client cancels
    local i = 0
    return signalr.stream(function()
        i = i + 1
        if i > 1 then ctx:await(function() return false end, 0.02) end
        return i
    end, { on_cancel = function() note("cancelled", ctx.connection_id) end })
end)
server:on("Sum", function(_, label, items)
    local total, n = 0, 0
    for v in items do total, n = total + v, n + 1 end
    return { label = label, total = total, n = n }
end)

note("ready")
if loop == "luv" then
    local uv = require "luv"
    require("signalr.loop.luv").attach(server, uv)
    uv.run()
else
    server:run()
end
