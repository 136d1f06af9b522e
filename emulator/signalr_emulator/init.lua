--- A local, in-memory stand-in for the Azure SignalR Service: REST API,
-- client negotiate and transports, server connections, fault injection;
-- in the Serverless service mode by default, or in the Default or Classic
-- mode, where clients are routed to hub servers (service_mode).
-- @module signalr_emulator
local cqueues = require "cqueues"
local http_server = require "http.server"
local h1_connection = require "http.h1_connection"
local util = require "signalr_emulator.util"
local rest = require "signalr_emulator.rest"
local client = require "signalr_emulator.client"
local server = require "signalr_emulator.server"
local hubs_mod = require "signalr_emulator.hubs"
local auth = require "signalr_emulator.auth"
local entra = require "signalr_emulator.entra"
local rand = require "openssl.rand"

local cjson = util.json
local tostring, tonumber, type, pcall, format = tostring, tonumber, type, pcall, string.format
local io_stderr, os_date = io.stderr, os.date
local monotime = cqueues.monotime
local ETIMEDOUT = require("cqueues.errno").ETIMEDOUT

local _M = {
    DEFAULT_KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH",
    DEFAULT_PORT = 8888,
    -- the service modes (the service's ServiceMode setting)
    SERVICE_MODES = { serverless = true, default = true, classic = true },
}

local LEVELS = { error = 1, warn = 2, info = 3, debug = 4 }

-- The service accepts 16 KB of request line and headers.  lua-http reads
-- lines of at most 4 KB by default and drops longer ones without a reply:
-- let whole lines of that budget through, so the REST side can answer
-- 431 as the service does.
local MAX_LINE = 16 * 1024 + 1024
do
    local new = h1_connection.new
    h1_connection.new = function(...)
        local conn, err, errno = new(...)
        if conn then conn:setmaxline(MAX_LINE) end
        return conn, err, errno
    end
end

-- Close the TCP connection at once, without reading what is left: for
-- requests whose framing cannot be trusted or whose body is too large.
local drop = util.drop
_M.drop = drop

-- lua-http's server runs each accepted socket in its handle_socket; the
-- emulator runs it itself, to count the connections of each address.
local handle_socket
for i = 1, 20 do
    local name, fn = debug.getupvalue(http_server.mt.__index.add_socket, i)
    if name == "handle_socket" then handle_socket = fn break end
    if not name then break end
end
assert(handle_socket, "this lua-http's http.server has no handle_socket: it is not supported")

-- Content-Length must be one decimal number (RFC 9110 section 8.6); with
-- anything else the body's end is unknown and the connection is closed.
local function bad_framing(req)
    local cl = req:get_as_sequence("content-length")
    if cl.n > 1 then return "repeated Content-Length" end
    local v = cl[1]
    if v and not v:match("^%d+$") then return "malformed Content-Length" end
    if v and #v > 15 then return "Content-Length too large" end
    if v and req:has("transfer-encoding") then
        return "both Content-Length and Transfer-Encoding"
    end
end
_M.LEVELS = LEVELS

local Emu = {}
Emu.__index = Emu

function _M.new(opts)
    opts = opts or {}
    local mode = opts.service_mode or "serverless"
    assert(_M.SERVICE_MODES[mode], "service_mode: serverless, default or classic")
    local self = setmetatable({
        -- serverless: clients listen (REST, server connections and the
        -- upstream send); default: every client goes to a hub server;
        -- classic: to a hub server when one is connected as it comes
        service_mode = mode,
        host = opts.host or "127.0.0.1",
        port = opts.port or _M.DEFAULT_PORT,
        key = opts.access_key or _M.DEFAULT_KEY,
        level = LEVELS[opts.log_level or "info"] or 3,
        max_body = opts.max_body or 1024 * 1024,
        ping_interval = opts.ping_interval or 15,
        handshake_timeout = opts.handshake_timeout or 15,
        -- a connection's first request line and headers must arrive within
        -- head_timeout s of connecting, each later one within head_timeout
        -- s of its first byte (slow senders cannot hold connections)
        head_timeout = opts.head_timeout or 10,
        -- open connections one client address may hold; more are closed
        max_conns_per_ip = opts.max_conns_per_ip or 1000,
        -- the largest WebSocket message a server connection may send
        -- (the library's default maximum message is 16 MiB)
        max_server_message = opts.max_server_message or 64 * 1024 * 1024,
        -- what may wait for one routed client that does not read
        max_client_buffer = opts.max_client_buffer or 16 * 1024 * 1024,
        conns_by_ip = {},
        accepted = setmetatable({}, { __mode = "k" }),
        quiet = {},
        timeout = 30,
        state = hubs_mod.new(),
        pending = {},
        faults = {},
        requests = {},
        stats = { tcp_connections = 0, rest_requests = 0, rest_connections = 0,
                  refused_connections = 0, head_timeouts = 0 },
        seen = setmetatable({}, { __mode = "k" }),
        seen_rest = setmetatable({}, { __mode = "k" }),
        servers = {},
        -- Microsoft Entra ID: the stand-in (when configured), temporary
        -- access keys by kid, and whether AccessKey tokens are refused
        disable_local_auth = opts.disable_local_auth or false,
        temp_keys = {},
        -- serverless upstream templates, in order (the first match wins)
        upstreams = opts.upstreams or {},
        -- Server-Sent Events and Long Polling connections by token
        sessions = {},
        -- server connections (persistent mode), as a set
        server_conns = {},
        upstream_timeout = opts.upstream_timeout or 30,
    }, Emu)
    for _, t in ipairs(self.upstreams) do
        -- upstream auth ManagedIdentity: the stand-in issues the tokens
        if t.auth then opts.entra = opts.entra or {} end
    end
    if opts.entra then
        opts.entra.log = function(...) return self:log(...) end
        self.entra = entra.new(opts.entra)
    end
    return self
end

function Emu:log(level, fmt, ...)
    if LEVELS[level] <= self.level then
        io_stderr:write(os_date("!%H:%M:%S "), level, " ", format(fmt, ...), "\n")
        io_stderr:flush()
    end
end

-- Log a rejection at warn once a minute per key (a client address and
-- what it did): the ones in between are counted, and the count goes with
-- the next line, so a flood of them cannot flood the log.
function Emu:warn_once(key, fmt, ...)
    local now, q = monotime(), self.quiet[key]
    if q and now < q.till then
        q.n = q.n + 1
        return
    end
    local more = q and q.n > 0 and format(" (%d more like it since the last such line)", q.n) or ""
    if not q then
        self.quiet_n = (self.quiet_n or 0) + 1
        if self.quiet_n > 4096 then
            -- many addresses: forget those whose minute is over
            for k, v in pairs(self.quiet) do
                if v.till <= now then self.quiet[k] = nil; self.quiet_n = self.quiet_n - 1 end
            end
        end
    end
    self.quiet[key] = { till = now + 60, n = 0 }
    self:log("warn", "%s%s", format(fmt, ...), more)
end

--- The connection string for this emulator.
function Emu:connection_string()
    local h = self.host
    if h == "127.0.0.1" or h == "0.0.0.0" or h == "::" or h == "::1" then h = "localhost" end
    return format("Endpoint=http://%s;Port=%d;AccessKey=%s;Version=1.0;", h, self.port, self.key)
end

-- ===== admin routes (/_emulator/...), for tests: no auth, loopback =====

local function admin(self, stream, method, path)
    local what = path:match("^/_emulator/([%w_]+)")
    if what == "requests" and method == "GET" then
        util.reply(stream, 200, cjson.encode(self.requests), nil, method)
    elseif what == "requests" and method == "DELETE" then
        self.requests = {}
        util.reply(stream, 204, nil, nil, method)
    elseif what == "stats" and method == "GET" then
        util.reply(stream, 200, cjson.encode {
            tcp_connections = self.stats.tcp_connections,
            rest_requests = self.stats.rest_requests,
            rest_connections = self.stats.rest_connections,
            clients = self.state.count,
            entra = self.entra and self.entra.counts or nil,
            temp_keys = self.stats.temp_keys or 0,
            refused_connections = self.stats.refused_connections,
            head_timeouts = self.stats.head_timeouts,
            server_connections = self.stats.server_connections or 0,
            server_handshakes = self.stats.server_handshakes or 0,
            server_messages = self.stats.server_messages or 0,
            server_ws_messages = self.stats.server_ws_messages or 0,
            server_clean_closes = self.stats.server_clean_closes or 0,
            server_deliveries = self.stats.server_deliveries or 0,
            server_types = self.stats.server_types or nil,
            service_mode = self.service_mode,
            routed_clients = self.stats.routed_clients or 0,
            no_server_refusals = self.stats.no_server_refusals or 0,
            open_connection_sent = self.stats.open_connection_sent or 0,
            connection_data_sent = self.stats.connection_data_sent or 0,
            connection_data_received = self.stats.connection_data_received or 0,
            connection_data_dropped = self.stats.connection_data_dropped or 0,
            close_connection_sent = self.stats.close_connection_sent or 0,
            close_connection_received = self.stats.close_connection_received or 0,
        }, nil, method)
    elseif what == "faults" and method == "POST" then
        local body = util.read_body(stream, 64 * 1024, 5, method)
        if not body then return 413 end
        local ok, f = pcall(cjson.decode, body)
        local server_mode = type(f) == "table" and f.scope == "server"
            and (f.mode == "status" or f.mode == "refuse" or f.mode == "stall")
        if not ok or type(f) ~= "table" or (not server_mode and f.mode ~= "status" and f.mode ~= "stall"
                                             and f.mode ~= "reset" and f.mode ~= "reset_after"
                                             and f.mode ~= "audience" and f.mode ~= "truncate")
                or (f.scope ~= nil and f.scope ~= "rest" and f.scope ~= "entra" and not server_mode)
                or (f.path ~= nil and type(f.path) ~= "string") then
            util.error_reply(stream, 400, "Error.Fault.Invalid",
                'expected {"mode":"status"|"stall"|"reset"|"reset_after"|"truncate"|"audience",'
                .. ' "count":N, "scope":"rest"|"entra", "path":"part of the path", ...}'
                .. ' or {"scope":"server", "mode":"status"|"refuse"|"stall", "count":N}', method)
            return 400
        end
        f.scope = f.scope or "rest"
        f.count = tonumber(f.count) or 1
        self.faults[#self.faults + 1] = f
        util.reply(stream, 204, nil, nil, method)
    elseif what == "faults" and method == "DELETE" then
        self.faults = {}
        util.reply(stream, 204, nil, nil, method)
    elseif what == "servers" and method == "GET" then
        local out = {}
        for sc in pairs(self.server_conns) do
            out[#out + 1] = { id = sc.id, hub = sc.key, handshaken = sc.handshaken or false,
                              type = sc.type or cjson.null, carries_clients = sc.carries or false,
                              clients = sc.count }
        end
        util.reply(stream, 200, #out > 0 and cjson.encode(out) or "[]", nil, method)
    elseif what == "servers" and method == "DELETE" then
        -- drop every server connection at once, as a service restart would
        local n = 0
        for sc in pairs(self.server_conns) do
            sc.drop()
            n = n + 1
        end
        self:log("info", "dropped %d server connection(s)", n)
        util.reply(stream, 200, cjson.encode { dropped = n }, nil, method)
    elseif what == "clients" and method == "GET" then
        local out = {}
        for key, h in pairs(self.state.hubs) do
            for id, c in pairs(h.conns) do
                local groups = {}
                for g in pairs(c.groups) do groups[#groups + 1] = g end
                out[#out + 1] = { hub = key, id = id, user = c.user or cjson.null,
                                  groups = groups, server = c.server and c.server.id or cjson.null }
            end
        end
        util.reply(stream, 200, #out > 0 and cjson.encode(out) or "[]", nil, method)
    else
        util.error_reply(stream, 404, "Error.Route.NotFound", "no such admin route", method)
        return 404
    end
    return 200
end

--- The first server-connection fault of this mode, if any; taken (its
-- count lowered) unless peek.
function Emu:server_fault(mode, peek)
    for i, f in ipairs(self.faults) do
        if f.scope == "server" and f.mode == mode then
            if not peek then
                f.count = f.count - 1
                if f.count <= 0 then table.remove(self.faults, i) end
                self:log("info", "fault: server %s", mode)
            end
            return f
        end
    end
    return nil
end

-- Apply the next injected fault of this scope ("rest", or "entra" for the
-- identity endpoints), if any.  Returns true when it answered; "audience"
-- faults return false, nil, the audience the next token gets.
local function fault(self, stream, method, scope, path)
    local f, at
    for i, x in ipairs(self.faults) do
        if x.scope == (scope or "rest")
                and (not x.path or (path and path:find(x.path, 1, true))) then
            f, at = x, i
            break
        end
    end
    if not f then return false end
    f.count = f.count - 1
    if f.count <= 0 then table.remove(self.faults, at) end
    self:log("info", "fault: %s", f.mode)
    if f.mode == "audience" then
        return false, nil, f.audience or "api://another-resource"
    elseif f.mode == "stall" then
        cqueues.sleep((tonumber(f.ms) or 1000) / 1000)
        return false
    elseif f.mode == "reset" then
        -- close the TCP connection without a reply
        local sock = stream.connection:take_socket()
        if sock then sock:close() end
        return true
    elseif f.mode == "reset_after" then
        -- do the work (deliver), then close without a reply: the request
        -- was read and acted on, and the client cannot know it
        return "after"
    elseif f.mode == "truncate" then
        -- do the work, then a reply whose body stops short of its length
        return "truncate"
    end
    local extra = f.retry_after and { ["retry-after"] = string.format("%d", f.retry_after) } or nil
    local status = math.floor(tonumber(f.status) or 503)
    if f.chunked then
        -- no Content-Length: lua-http sends the body chunked
        local h = require("http.headers").new()
        h:append(":status", string.format("%d", status))
        h:append("x-ms-error-code", "Error.Injected")
        h:append("content-type", "application/json")
        stream:write_headers(h, false)
        stream:write_chunk('{"code":"Error.Injected",', false)
        stream:write_chunk('"message":"injected fault, sent in chunks"}', true)
        return true, status
    end
    util.error_reply(stream, status, "Error.Injected", "injected fault", method, extra)
    return true, math.floor(tonumber(f.status) or 503)
end

local function cors(stream, req, method)
    local origin = req:get("origin")
    if method ~= "OPTIONS" then return origin end
    util.reply(stream, 204, nil, {
        ["access-control-allow-origin"] = origin or "*",
        ["access-control-allow-credentials"] = "true",
        ["access-control-allow-methods"] = "GET, POST, PUT, DELETE, HEAD, OPTIONS",
        ["access-control-allow-headers"] = req:get("access-control-request-headers")
            or "authorization, content-type, x-requested-with, x-signalr-user-agent",
        ["access-control-max-age"] = "600",
    }, method)
    return nil, true
end

-- The client address of a connection (or socket), for limits and logs.
local function peer_ip(conn)
    local ok, _, ip = pcall(conn.peername, conn)
    return ok and ip or "?"
end

-- 408 and the connection closed: the request head did not arrive in time.
local function head_timeout(self, stream, ip)
    self.stats.head_timeouts = self.stats.head_timeouts + 1
    self:warn_once("head " .. ip, "%s: a request line and headers took over %gs (--head-timeout);"
        .. " connection closed", ip, self.head_timeout)
    local sock = stream.connection:take_socket()
    if sock then
        pcall(sock.xwrite, sock, "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
            .. "content-length: 0\r\n\r\n", "bn", 1)
        sock:close()
    end
end

function Emu:onstream(stream)
    local conn = stream.connection
    local ip = peer_ip(conn)
    if not self.seen[conn] then
        self.seen[conn] = true
        self.stats.tcp_connections = self.stats.tcp_connections + 1
    end
    -- the whole head has a deadline: from the connection's start for its
    -- first request, else from the request's first byte
    local since = conn.socket and self.accepted[conn.socket]
    if since then self.accepted[conn.socket] = nil end
    local wait = (since or monotime()) + self.head_timeout - monotime()
    local req, why, errno = stream:get_headers(wait > 0 and wait or 0)
    if not req and errno == ETIMEDOUT then return head_timeout(self, stream, ip) end
    local method, target, path, qs, framing
    if req then
        method, target = req:get(":method"), req:get(":path") or "/"
        path, qs = target:match("^([^?]*)%??(.*)$")
        framing = bad_framing(req)
    else
        -- lua-http refused the head (e.g. Content-Length: abc); left to
        -- itself it would answer 503 and then spin on the unknown body
        framing = tostring(why or "unreadable request head")
    end
    if framing then
        self:log("warn", "%s %s: %s; connection closed", tostring(method or "?"),
            tostring(path or "?"), framing)
        local h = require("http.headers").new()
        h:append(":status", "400")
        h:append("connection", "close")
        h:append("x-ms-error-code", "Error.Request.Invalid")
        h:append("content-length", "0")
        if req then pcall(stream.write_headers, stream, h, true)
        else
            local sock = stream.connection.socket
            if sock then
                pcall(sock.xwrite, sock, "HTTP/1.1 400 Bad Request\r\nconnection: close\r\n"
                    .. "x-ms-error-code: Error.Request.Invalid\r\ncontent-length: 0\r\n\r\n", "bn", 1)
                pcall(sock.flush, sock, "n", 1)
            end
        end
        drop(stream)
        return
    end
    local origin, done = cors(stream, req, method)
    if done then return end
    if origin then
        -- every reply gets the CORS headers: wrap write_headers once
        local write = stream.write_headers
        stream.write_headers = function(s, h, ...)
            h:upsert("access-control-allow-origin", origin)
            h:upsert("access-control-allow-credentials", "true")
            return write(s, h, ...)
        end
    end
    local status
    if path:sub(1, 5) == "/api/" then
        self.stats.rest_requests = self.stats.rest_requests + 1
        if not self.seen_rest[stream.connection] then
            self.seen_rest[stream.connection] = true
            self.stats.rest_connections = self.stats.rest_connections + 1
        end
        local rec = { method = method, path = target, headers = {} }
        for k, v in req:each() do
            if k:sub(1, 1) ~= ":" then rec.headers[k] = v end
        end
        -- recorded on arrival, so a stalled request is seen at once
        local r = self.requests
        r[#r + 1] = rec
        if #r > 1000 then table.remove(r, 1) end
        local answered, fstatus = fault(self, stream, method, nil, target)
        if answered == "after" then
            -- the reply is swallowed, then the connection is reset
            local mute = util.proxy(stream, {
                write_headers = function() return true end,
                write_chunk = function() return true end,
            })
            rest.handle(self, mute, req, method, path, qs, rec)
            local sock = stream.connection:take_socket()
            if sock then sock:close() end
            status = 0
        elseif answered == "truncate" then
            -- the work is done; the reply's body stops short of its
            -- Content-Length and the connection closes
            local got = 200
            local mute = util.proxy(stream, {
                write_headers = function(_, h) got = tonumber(h:get(":status")) or got return true end,
                write_chunk = function() return true end,
            })
            rest.handle(self, mute, req, method, path, qs, rec)
            local sock = stream.connection:take_socket()
            if sock then
                sock:xwrite(string.format("HTTP/1.1 %d Cut\r\nContent-Type: application/json\r\n"
                    .. "Content-Length: 64\r\n\r\n{\"cut\":", got), "bn")
                sock:flush()
                sock:close()
            end
            status = got
        elseif answered then
            status = fstatus or 0
        else
            status = rest.handle(self, stream, req, method, path, qs, rec)
        end
        rec.status = status
    elseif path == "/client/negotiate" or path == "/client/negotiate/" then
        status = client.negotiate(self, stream, req, method, util.parse_query(qs))
    elseif path == "/server" or path == "/server/" then
        status = server.connect(self, stream, req, method, util.parse_query(qs))
    elseif path == "/client" or path == "/client/" then
        status = client.connect(self, stream, req, method, util.parse_query(qs))
    elseif path:sub(1, 11) == "/_emulator/" then
        status = admin(self, stream, method, path)
    else
        status = self.entra and self.entra:handle(stream, req, method, path,
            util.parse_query(qs), function() return fault(self, stream, method, "entra") end)
        if not status then
            util.error_reply(stream, 404, "Error.Route.NotFound", "no such route", method)
            status = 404
        end
    end
    self:log("info", "%s %s -> %s", method, #path > 200 and (path:sub(1, 200) .. "...") or path,
        tostring(status))
    if status == 413 then
        self:warn_once("body " .. ip, "%s: %s %s: the body is over its limit: 413, connection closed", ip,
            method, #path > 200 and (path:sub(1, 200) .. "...") or path)
    end
    -- A reply sent before the request body was read (faults, early
    -- refusals) leaves the stream half closed; lua-http's shutdown would
    -- then read on with step(0) in a loop that can spin without progress.
    -- Read what is left here (bounded, briefly); a body that is too large
    -- or does not end costs the connection instead.
    if stream.state == "half closed (local)" and stream.connection.socket then
        pcall(stream.get_body_chars, stream, self.max_body + 1, 1)
        if stream.state ~= "closed" then drop(stream) end
    end
end

-- ===== authentication (shared by the REST and client sides) =====

--- A REST bearer token: the claims, or nil, status, code, reason.  `what`
-- is the permission the route needs (signalr_emulator.entra.allowed).
function Emu:rest_auth(token, path, authority, what)
    local h = entra.header(token)
    if h and h.alg == "RS256" then
        if not self.entra then
            return nil, 401, "Error.Unauthorized", "Microsoft Entra ID tokens are not accepted"
                .. " (start the emulator with --entra-app or --entra-identity)"
        end
        local claims, why = self.entra:verify(token)
        if not claims then
            return nil, 401, "Error.Unauthorized", 'Bearer error="invalid_token", '
                .. 'error_description="' .. why .. '"'
        end
        local ok, need = entra.allowed(claims, what)
        if not ok then
            return nil, 403, "Error.Forbidden", "the identity " .. tostring(claims.sub)
                .. " has no role that allows this (" .. need .. ")"
        end
        return claims
    end
    if self.disable_local_auth then
        return nil, 403, "Error.Forbidden", "local authentication is disabled: use a"
            .. " Microsoft Entra ID token, not one signed with an AccessKey"
    end
    if what == "key" then
        return nil, 401, "Error.Unauthorized", "a temporary access key is only issued to"
            .. " Microsoft Entra ID identities"
    end
    local claims, reason = auth.rest(self.key, token, path, authority)
    if not claims then
        return nil, 401, "Error.Unauthorized", "authorization failed: " .. reason
    end
    return claims
end

--- The key a client token must be signed with: the temporary key its
-- "kid" names, else the AccessKey (unless local auth is disabled).
function Emu:client_key(token)
    local h = entra.header(token)
    local kid = h and h.kid
    if kid ~= nil then
        local k = type(kid) == "string" and self.temp_keys[kid]
        if not k or k.expires <= os.time() then return nil, "The signature key was not found" end
        return k.key
    end
    if self.disable_local_auth then
        return nil, "local authentication is disabled: the token is signed with the AccessKey"
    end
    return self.key
end

--- Issue a temporary access key (90 minutes, as the service's).
function Emu:issue_key()
    local kid, key = "tk-" .. entra.b64url(rand.bytes(9)), entra.b64url(rand.bytes(32))
    self.temp_keys[kid] = { key = key, expires = os.time() + 90 * 60 }
    self.stats.temp_keys = (self.stats.temp_keys or 0) + 1
    return kid, key
end

-- A connection from an address that holds max_conns_per_ip already is
-- closed at once; the others are served, and counted while they last.
local function admit(self, srv, sock)
    local ip = peer_ip(sock)
    local n = self.conns_by_ip[ip] or 0
    if n >= self.max_conns_per_ip then
        self.stats.refused_connections = self.stats.refused_connections + 1
        self:warn_once("conns " .. ip, "%s holds %d connections (--max-conns-per-ip): more are closed"
            .. " at once", ip, n)
        sock:close()
        return true
    end
    self.conns_by_ip[ip] = n + 1
    self.accepted[sock] = monotime()
    srv.n_connections = srv.n_connections + 1
    srv.cq:wrap(function()
        local ok, err = pcall(handle_socket, srv, sock)
        if not ok then self:log("error", "connection failed: %s", tostring(err)) end
        local left = self.conns_by_ip[ip] - 1
        self.conns_by_ip[ip] = left > 0 and left or nil
    end)
    return true
end

--- Bind the listening sockets (also [::1] when serving localhost).
function Emu:listen()
    local hosts = { self.host }
    if self.host == "127.0.0.1" then hosts[2] = "::1" end
    for i, h in ipairs(hosts) do
        local srv = http_server.listen {
            host = h, port = self.port, reuseaddr = true,
            -- slow clients cannot hold connections open for ever: the first
            -- bytes (read to tell TLS and HTTP/2 from HTTP/1) count toward
            -- the head's deadline too
            connection_setup_timeout = self.head_timeout, intra_stream_timeout = 30,
            onstream = function(_, stream)
                local ok, err = pcall(self.onstream, self, stream)
                if not ok then self:log("error", "request failed: %s", tostring(err)) end
            end,
            onerror = function(_, ctx, op, err)
                self:log("debug", "%s on %s: %s", tostring(op), tostring(ctx), tostring(err))
            end,
        }
        srv.add_socket = function(s, sock) return admit(self, s, sock) end
        local ok, err = srv:listen()
        if not ok then
            if i == 1 then return nil, "cannot listen on " .. h .. ":" .. self.port .. ": " .. tostring(err) end
        else
            if i == 1 then
                local _, _, port = srv:localname()
                self.port = port
                if self.entra then self.entra.base = "http://localhost:" .. port end
            end
            self.servers[#self.servers + 1] = srv
        end
    end
    return true
end

--- Serve until stopped (SIGINT / SIGTERM end the process).
function Emu:loop()
    local cq = cqueues.new()
    for _, srv in ipairs(self.servers) do
        cq:wrap(function()
            -- an error in one connection must not stop the others
            while true do
                local ok, err = srv:loop()
                if ok then break end
                self:log("error", "connection failed: %s", tostring(err))
            end
        end)
    end
    assert(cq:loop())
end

return _M
