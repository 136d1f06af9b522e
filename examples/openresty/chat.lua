-- chat.lua - the handlers of examples/openresty/nginx.conf: negotiate,
-- broadcast, Functions-binding actions, a timer, and a log-phase call.
local signalr = require "signalr"
local cjson = require "cjson.safe"

local _M = {}
local hub -- one client per worker, created on first use (no I/O in new)

local function get_hub()
    if not hub then
        local client = assert(signalr.new(os.getenv("AzureSignalRConnectionString")))
        hub = assert(client:hub("chat"))
    end
    return hub
end

local function reply(status, body)
    ngx.status = status
    ngx.header.content_type = "application/json"
    ngx.say(cjson.encode(body))
end

local function body_json()
    ngx.req.read_body()
    return cjson.decode(ngx.req.get_body_data() or "") or {}
end

function _M.negotiate()
    local user = ngx.var.http_x_user or ngx.var.arg_user
    local n, err = get_hub():negotiate { user_id = user }
    if not n then return reply(400, { error = err }) end
    reply(200, n)
end

function _M.broadcast()
    local m = body_json()
    local ok, err, details = get_hub():broadcast(m.target or "newMessage", m.arguments)
    if not ok then return reply(502, { error = err, code = details.code }) end
    reply(202, {})
end

function _M.send()
    local ok, err, details = get_hub():send(body_json())
    if ok == nil then return reply(502, { error = err, code = details.code }) end
    reply(200, { result = ok })
end

function _M.later()
    local m = body_json()
    ngx.timer.at(0, function(premature)
        if premature then return end
        local ok, err = get_hub():broadcast(m.target or "newMessage", m.arguments)
        if not ok then ngx.log(ngx.ERR, err) end
    end)
    reply(202, {})
end

function _M.from_log_phase()
    local ok, err = get_hub():broadcast("newMessage", { "from the log phase" })
    if not ok then ngx.log(ngx.WARN, err) end
end

-- The serverless half: the service POSTs client events here (configure
-- the upstream URL template http(s)://<this host>/upstream; locally:
-- signalr-emulator --upstream 'http://127.0.0.1:<port>/upstream').  The
-- signature is checked against the connection string's AccessKey (add
-- the secondary key to the list while you rotate keys).
local upstream = require "signalr.upstream"
local handlers -- made on first use: the hub is this worker's
function _M.upstream()
    handlers = handlers or {
        keys = { os.getenv("AzureSignalRConnectionString") },
        hubs = { chat = {
            connected = function(ev)
                ngx.log(ngx.INFO, "chat: ", ev.user_id or ev.connection_id, " joined")
            end,
            disconnected = function(ev)
                ngx.log(ngx.INFO, "chat: ", ev.user_id or ev.connection_id, " left")
            end,
            messages = {
                -- connection.send("broadcast", text): to everyone, with the sender
                broadcast = function(ev, text)
                    if type(text) ~= "string" then error("broadcast takes a text") end
                    assert(get_hub():broadcast("newMessage", { ev.user_id or ev.connection_id, text }))
                end,
                -- await connection.invoke("echo", value): the value back
                echo = function(_, value) return value end,
            },
        } },
    }
    return upstream.handle(handlers)
end

return _M
