--- The hub of examples/nginx/nginx.conf: one signalr.server per worker,
-- started from init_worker_by_lua.  Handlers run in light threads: they
-- may sleep, use cosockets (here a plain HTTP GET to a location of this
-- nginx; lua-resty-redis or lua-resty-http work the same way) and send
-- through the server's own connections.  ngx.location.capture is not
-- available: nginx gives timers' threads no request to capture from.
local signalr = require "signalr"

local _M = {}
local server

-- A GET over a cosocket (what lua-resty-http does, in a few lines).
local function http_get(port, path)
    local sock = ngx.socket.tcp()
    sock:settimeouts(1000, 1000, 1000)
    local ok, err = sock:connect("127.0.0.1", port)
    if not ok then return nil, err end
    sock:send("GET " .. path .. " HTTP/1.0\r\nHost: localhost\r\n\r\n")
    local reply = sock:receive("*a")
    sock:close()
    return reply and reply:match("\r\n\r\n(.*)$")
end

function _M.start(port)
    local cs = os.getenv("AzureSignalRConnectionString")
    if not cs then
        ngx.log(ngx.ERR, "hub_app: AzureSignalRConnectionString is not set")
        return
    end
    local err
    server, err = signalr.server {
        connection_string = cs, hub = "game", connection_count = 2,
        on_log = function(level, msg)
            ngx.log(level == "error" and ngx.ERR or level == "warn" and ngx.WARN or ngx.INFO,
                "hub_app: ", msg)
        end,
    }
    if not server then
        ngx.log(ngx.ERR, "hub_app: ", err)
        return
    end
    local game = server:hub("game")

    server:on_connected(function(ctx)
        ctx:send("newMessage", "welcome", ngx.worker.pid())
    end)
    -- once per client, also when a reload closes this worker's server
    server:on_disconnected(function()
        ngx.shared.hub_app:incr("disconnected", 1, 0)
    end)
    server:on("Add", function(_, a, b) return a + b end)
    -- which worker serves this client
    server:on("Worker", function() return ngx.worker.pid() end)
    -- a slow handler: other clients' invocations go on meanwhile
    server:on("Slow", function(_, secs)
        ngx.sleep(secs)
        return "slept " .. secs
    end)
    -- cosockets inside a handler: a location of this nginx
    server:on("Score", function()
        local body, e = http_get(port, "/score")
        if not body then error(signalr.hub_error("cannot fetch the score: " .. tostring(e))) end
        return tonumber(body)
    end)
    -- a send through the server's own connections: every client hears it
    server:on("Shout", function(ctx, text)
        assert(game:broadcast("newMessage", { "shout", ctx.user_id or "-", text }))
    end)
    server:on("JoinRoom", function(ctx, room)
        assert(ctx:join(room))
        assert(game:to_group(room, "newMessage", { "joined", room }))
        return true
    end)
    -- a client result: the client's GetInput handler answers
    server:on("AskInput", function(ctx, n)
        local v, msg, d = ctx:invoke("GetInput", n)
        if v == nil then return { error = msg, code = d.code } end
        return { value = v }
    end)
    server:on("Count", function(_, n)
        local i = 0
        return signalr.stream(function()
            i = i + 1
            if i <= n then ngx.sleep(0.01) return i end
        end)
    end)
    -- an endless stream (a tick per 20 ms) until the client cancels it
    server:on("Ticks", function()
        local i = 0
        return signalr.stream(function()
            i = i + 1
            if i > 1 then ngx.sleep(0.02) end
            return i
        end, { on_cancel = function() ngx.shared.hub_app:incr("cancelled", 1, 0) end })
    end)
    -- a stream from the client (a Subject in JS): summed as it comes
    server:on("Sum", function(_, label, items)
        local total, n = 0, 0
        for v in items do total, n = total + v, n + 1 end
        return { label = label, total = total, n = n }
    end)
    local ok, serr = server:start()
    if not ok then ngx.log(ngx.ERR, "hub_app: ", serr) end
end

function _M.status()
    local clients = 0
    if server then for _ in pairs(server.sessions) do clients = clients + 1 end end
    ngx.say(require("cjson").encode { pid = ngx.worker.pid(), clients = clients,
                                      cancelled = ngx.shared.hub_app:get("cancelled") or 0,
                                      disconnected = ngx.shared.hub_app:get("disconnected") or 0 })
end

return _M
