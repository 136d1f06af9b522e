--- The nginx transport: HTTP/1.1 over cosockets (`ngx.socket.tcp`), so a
-- hub call inside an OpenResty handler never blocks the worker.  It is
-- the blocking transport (signalr.transport.curl) with cosockets moving
-- the bytes: the request comes from the C core's builder and the reply
-- goes through the core's reader and retry policy.
--
-- Caveats: TLS trust comes from nginx's `lua_ssl_trusted_certificate`
-- (the `ca_file` option is not used inside nginx); connections are pooled
-- per endpoint with `setkeepalive`.
-- @module signalr.transport.ngx
local core = require "signalr.core"
local curl = require "signalr.transport.curl"

local ngx = ngx
local tcp, sleep, now, get_phase = ngx.socket.tcp, ngx.sleep, ngx.time, ngx.get_phase
local tonumber, tostring, lower, concat, find, sub, byte, setmetatable =
    tonumber, tostring, string.lower, table.concat, string.find, string.sub, string.byte,
    setmetatable

local parse_reply, reply_reader = core.parse_reply, core.reply_reader

-- The most a read of a reply asks for at once.
local READ_MAX = 65536

local _M = {}

-- Phases where cosockets work (lua-nginx-module docs, "Cosockets Not
-- Available Everywhere"); light threads (ngx.thread.spawn) work in the
-- same ones.
local COSOCKET_PHASES = {
    rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
    ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
    preread = true,
}

--- Can a hub call run here without blocking the worker?
function _M.usable()
    return COSOCKET_PHASES[get_phase()] == true
end

--- Why a call cannot run in this phase: nil, msg, details (`EPHASE`; the
-- caller puts "signalr.<method>: " before the message).
function _M.phase_error()
    return nil, "cosockets are not available in nginx's '"
        .. get_phase() .. "' phase and a blocking call would stall the worker;"
        .. " run it from ngx.timer.at(0, fn) instead", { code = "EPHASE" }
end

local function read_body(sock, headers, method, status)
    if method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
        return ""
    end
    if lower(headers["transfer-encoding"] or "") == "chunked" then
        local parts = {}
        while true do
            local line, err = sock:receive("*l")
            if not line then return nil, err end
            local size = tonumber(line:match("^%x+"), 16)
            if not size then return nil, "malformed chunk size" end
            if size == 0 then
                -- trailers end with an empty line
                repeat
                    line, err = sock:receive("*l")
                    if not line then return nil, err end
                until line == ""
                return concat(parts)
            end
            local data
            data, err = sock:receive(size)
            if not data then return nil, err end
            parts[#parts + 1] = data
            line, err = sock:receive("*l")
            if not line then return nil, err end
        end
    end
    local len = tonumber(headers["content-length"])
    if len then
        if len == 0 then return "" end
        return sock:receive(len)
    end
    return sock:receive("*a"), nil, true -- until close
end

-- The pool name and connect options of one endpoint, made once per
-- host and port (the hot path allocates neither).
local function pool_opts(self, host, port, tls)
    local byhost = self.pools[host]
    if not byhost then
        byhost = {}
        self.pools[host] = byhost
    end
    local key = tls and -port or port
    local o = byhost[key]
    if not o then
        o = { pool = host .. ":" .. port .. (tls and ":tls" or "")
            .. (self.verify_tls and "" or ":noverify") }
        byhost[key] = o
    end
    return o
end

-- An identity request's bytes (core.http_request's table): the hub
-- operations' come whole from the core (client:wire).
local function wire_of(req)
    local h = req.headers
    local host = req.host:find(":", 1, true) and ("[" .. req.host .. "]") or req.host
    if (req.tls and req.port ~= 443) or (not req.tls and req.port ~= 80) then
        host = host .. ":" .. req.port
    end
    local lines = { req.method, " ", req.path, " HTTP/1.1\r\nHost: ", host,
                    "\r\nUser-Agent: ", h["User-Agent"], "\r\n" }
    if h["Asrs-User-Agent"] then
        lines[#lines + 1] = "Asrs-User-Agent: " .. h["Asrs-User-Agent"] .. "\r\n"
    end
    if req.extra_headers then lines[#lines + 1] = req.extra_headers end
    if h.Authorization then
        lines[#lines + 1] = "Authorization: " .. h.Authorization .. "\r\n"
    end
    if h["Content-Type"] then
        lines[#lines + 1] = "Content-Type: " .. h["Content-Type"] .. "\r\n"
    end
    if req.method ~= "GET" and req.method ~= "HEAD" then
        lines[#lines + 1] = "Content-Length: " .. (req.body and #req.body or 0) .. "\r\n"
    end
    lines[#lines + 1] = "\r\n"
    if req.body then lines[#lines + 1] = req.body end
    return concat(lines)
end

-- "HTTP/1.x NNN ..." -> NNN, or nil
local function status_of(head)
    if sub(head, 1, 7) ~= "HTTP/1." or sub(head, 9, 9) ~= " " then return nil end
    local m = byte(head, 8)
    if m ~= 48 and m ~= 49 then return nil end
    local a, b, c, d = byte(head, 10, 13)
    if not (a and b and c) or a < 48 or a > 57 or b < 48 or b > 57 or c < 48 or c > 57
        or (d and d ~= 32) then
        return nil
    end
    return (a - 48) * 100 + (b - 48) * 10 + (c - 48)
end

-- The headers the transport and the reply reader use, by plain search
-- in the lowered head (no pattern matching: LuaJIT compiles this).
local WANTED = { "content-length", "transfer-encoding", "connection",
                 "x-ms-error-code", "retry-after" }

local function headers_of(head)
    local lh, headers = lower(head), {}
    for i = 1, #WANTED do
        local name = WANTED[i]
        local _, e = find(lh, "\r\n" .. name .. ":", 1, true)
        if e then
            local from, to = e + 1, (find(head, "\r", e + 1, true) or #head + 1) - 1
            while from <= to and (byte(head, from) == 32 or byte(head, from) == 9) do
                from = from + 1
            end
            while to >= from and (byte(head, to) == 32 or byte(head, to) == 9) do
                to = to - 1
            end
            headers[name] = sub(head, from, to)
        end
    end
    return headers
end

-- A connection to host and port (from nginx's pool, or new: then TLS is
-- set up) with the request `bytes` written on it.  Returns sock, reused |
-- nil, err, false (nothing was sent), stale (a pooled connection that
-- turned out closed).
local function open_send(self, host, port, tls, bytes)
    local sock = tcp()
    local t = self.timeouts
    sock:settimeouts(t.connect, t.send, t.read)
    -- nginx's resolver does not read /etc/hosts: name loopback ourselves
    local addr = host == "localhost" and "127.0.0.1" or host
    local ok, err = sock:connect(addr, port, pool_opts(self, host, port, tls))
    if not ok then
        if err:find("no resolver", 1, true) then
            err = err .. " (add a 'resolver' directive to nginx.conf)"
        end
        return nil, "could not connect: " .. err, false
    end
    local reused = sock:getreusedtimes() > 0
    if tls and not reused then
        -- false, not nil: no session object wanted (with nil, lua-resty-core
        -- 0.1.25 fetches the result twice after an asynchronous handshake
        -- and fails an assertion)
        ok, err = sock:sslhandshake(false, host, self.verify_tls)
        if not ok then
            sock:close()
            return nil, "TLS handshake failed: " .. err
                .. (self.verify_tls and " (is lua_ssl_trusted_certificate set?)" or ""), false
        end
    end
    ok, err = sock:send(bytes)
    if not ok then
        sock:close()
        -- nginx 1.22/lua 0.10.23 may report a refused certificate this way:
        -- the peer closes right after a handshake that looked fine
        if tls and not reused and self.verify_tls then
            err = err .. " (TLS: is the service's certificate trusted?"
                .. " set lua_ssl_trusted_certificate)"
        end
        -- nothing was sent; a pooled connection may just have gone stale
        return nil, "send failed: " .. err, false, reused
    end
    return sock, reused
end

-- What a failed read says: the error text as the transports word it.
local function read_error(err)
    return err == "timeout" and "timeout" or ("connection " .. tostring(err))
end

-- One exchange of a hub operation's request `bytes` (method: its method)
-- with host and port, the reply read by the core's reader
-- (core.parse_reply): a small reply takes one read and one call.
-- Returns status, error_code, retry_after, body | nil, err, sent (whether
-- any request byte may have reached the server), stale (a pooled
-- connection that turned out closed).
local function exchange_op(self, host, port, tls, method, bytes)
    local sock, reused, sent, stale = open_send(self, host, port, tls, bytes)
    if not sock then return nil, reused, sent, stale end
    local head = method == "HEAD"
    local data, err = sock:receiveany(READ_MAX)
    if not data then
        sock:close()
        return nil, read_error(err), true, reused and err == "closed"
    end
    local status, keep, code, retry_after, body = parse_reply(data, head)
    if status == nil then
        -- more parts to come: each is read once
        local rd = reply_reader(head)
        status, keep, code, retry_after, body = rd:feed(data)
        while status == nil do
            data, err = sock:receiveany(READ_MAX)
            if not data and err ~= "closed" then
                sock:close()
                return nil, read_error(err), true
            end
            status, keep, code, retry_after, body = rd:feed(data or "", not data)
            if status == false and not data then keep = read_error(err) end
        end
    end
    if not status then
        -- false: not a reply (keep holds why)
        sock:close()
        return nil, keep, true
    end
    if keep then
        sock:setkeepalive(self.keepalive_timeout, self.pool_size)
    else
        sock:close()
    end
    return status, code, retry_after, body
end

-- One exchange of the request `bytes` (method: its method) with host and
-- port.  Returns status, headers, body | nil, err, sent (whether any
-- request byte may have reached the server), stale (a pooled connection
-- that turned out closed).
local function exchange(self, host, port, tls, method, bytes)
    local sock, reused, sent, stale = open_send(self, host, port, tls, bytes)
    if not sock then return nil, reused, sent, stale end
    local err
    -- the whole head in one read: status line and headers
    local head
    head, err = sock:receiveuntil("\r\n\r\n")()
    if not head then
        sock:close()
        return nil, err == "timeout" and "timeout" or ("connection " .. err), true,
            reused and err == "closed"
    end
    local status = status_of(head)
    if not status then
        sock:close()
        return nil, "malformed status line", true
    end
    local headers = headers_of(head)
    local body, until_close
    body, err, until_close = read_body(sock, headers, method, status)
    if not body then
        sock:close()
        return nil, err == "timeout" and "timeout" or ("connection " .. tostring(err)), true
    end
    if until_close or lower(headers.connection or "") == "close" then
        sock:close()
    else
        sock:setkeepalive(self.keepalive_timeout, self.pool_size)
    end
    return status, headers, body
end

-- on_log: a retry, as the core logs those of libcurl
local function log_retry(self, what, attempt, code, msg, delay)
    if self.log then
        self.log("warn", what .. ": attempt " .. attempt .. " failed (" .. tostring(code) .. ": "
            .. tostring(msg) .. "); retrying in " .. math.floor(delay * 1000 + 0.5) .. " ms")
    end
end

-- One attempt: res | nil, msg, details, delay (a delay: try again after
-- it).  Apart from the retry loop, so the common case runs no loop
-- (LuaJIT then compiles it instead of aborting on the loop).
-- A single send passes params nil and its fields (hub ... excluded)
-- instead.
local function attempt_call(self, op, params, attempt, hub, target, text, id, excluded)
    -- the whole request in one string from the core (no table per header)
    local bytes, host, port, tls, idempotent, method
    if params then
        bytes, host, port, tls, idempotent, method = self.handle:wire(op, params, now())
    else
        bytes, host, port, tls, idempotent, method = self.handle:wire_send(op, hub, target, text,
            id, excluded, now())
    end
    if not bytes then return nil, host, port end -- msg, details
    local msg, details
    -- status, error code, retry after, body | nil, error text, sent, stale
    local status, a, b, c = exchange_op(self, host, port, tls, method, bytes)
    local stale = not status and c
    -- A pooled connection the server had closed: one immediate fresh
    -- attempt, when that cannot duplicate anything: the request was
    -- not sent at all, or it is idempotent.  A send that went out on
    -- it may have been read, so it is never resent.
    if stale and attempt == 1 and (not b or idempotent) then
        status, a, b, c = exchange_op(self, host, port, tls, method, bytes)
    end
    local code, fail_status, retry_after
    if status then
        local res
        res, msg, details = core.read_reply(op, status, a, c)
        if res ~= nil then return res end
        details.sent = true
        code, fail_status, retry_after = "ESTATUS", status, b
    else
        msg = a
        local sent = b
        code = (not sent) and "ECONNECT" or (msg == "timeout" and "ETIMEDOUT" or "EHTTP")
        if msg == "timeout" then msg = "timed out" end
        if stale and sent and not idempotent then
            msg = "the connection closed before a reply, after the request was sent:"
                .. " it may have been delivered, so it was not sent again"
        end
        details = { code = code, sent = sent and true or false }
    end
    local delay = core.retry_delay(op, attempt, code, fail_status or 0,
        retry_after or -1, self.retries, self.retry_delay, self.max_retry_delay, self.retry_mode)
    if not delay and attempt > 1 then msg = msg .. " (after " .. attempt .. " attempts)" end
    if delay then log_retry(self, op, attempt, code, msg, delay) end
    return nil, msg, details, delay
end

-- Perform op with params (or a single send's fields, params nil) through
-- cosockets, with the core's retry rules.
local function perform_with(self, op, params, hub, target, text, id, excluded)
    if COSOCKET_PHASES[get_phase()] ~= true then return _M.phase_error() end
    local res, msg, details, delay = attempt_call(self, op, params, 1, hub, target, text, id, excluded)
    if not delay then return res, msg, details end
    local attempt = 1
    repeat
        if delay > 0 then sleep(delay) end
        attempt = attempt + 1
        res, msg, details, delay = attempt_call(self, op, params, attempt, hub, target, text, id,
            excluded)
    until not delay
    return res, msg, details
end

local Ngx = setmetatable({}, { __index = curl.Curl })
Ngx.__index = Ngx
-- Not Curl's one-call send of an argument list: a send here yields (the
-- cosockets, the sleep before a retry), so another thread could change
-- the list between attempts; the hub's general path encodes it once,
-- before any yield.  (false, not nil: it hides the inherited method.)
Ngx.send_args = false
Ngx.__tostring = curl.Curl.__tostring
_M.Ngx = Ngx

--- Perform op with params through cosockets, with the core's retry rules.
-- @return true | false | nil, message, details
function Ngx:perform(op, params)
    return perform_with(self, op, params)
end

--- `perform` for a single send, its fields as arguments.
function Ngx:perform_send(op, hub, target, text, id, excluded)
    return perform_with(self, op, nil, hub, target, text, id, excluded)
end

--- Perform an identity request (signalr.auth's spec: method, url,
-- headers, body, content_type) over cosockets, retried like the core
-- retries them (transport failures, 408, 429, 5xx).
-- @return status, body | nil, message, details
function Ngx:fetch(spec)
    local req, msg, details = core.http_request(spec.method, spec.url, spec.headers,
        spec.body, spec.content_type)
    if not req then return nil, msg, details end
    local bytes = wire_of(req)
    local attempt = 0
    while true do
        attempt = attempt + 1
        local status, headers, body = exchange(self, req.host, req.port, req.tls, req.method, bytes)
        local code, retry_after
        if status then
            if status < 500 and status ~= 429 and status ~= 408 then return status, body end
            code, retry_after = "ESTATUS", tonumber(headers["retry-after"] or "")
        else
            msg = headers == "timeout" and "timed out" or headers
            code = (not body) and "ECONNECT" or (headers == "timeout" and "ETIMEDOUT" or "EHTTP")
        end
        local delay = core.retry_delay("http", attempt, code, status or 0, retry_after or -1,
            self.retries, self.retry_delay, self.max_retry_delay, self.retry_mode)
        if not delay then
            if status then return status, body end
            if attempt > 1 then msg = msg .. " (after " .. attempt .. " attempts)" end
            return nil, msg, { code = code, sent = false }
        end
        log_retry(self, "identity request", attempt, code, status and ("HTTP " .. status) or msg, delay)
        if delay > 0 then sleep(delay) end
    end
end

--- A transport over cosockets for a client's options.
-- @tparam userdata handle the core's client
-- @tparam table info `handle:info()`
-- @tparam table o the client's options, defaults filled in
-- @tparam[opt] table auth Entra ID (signalr.auth)
function _M.new(handle, info, o, auth)
    local self = curl.new(handle, info, o, auth)
    local timeout = o.timeout * 1000
    self.timeouts = { connect = o.connect_timeout and o.connect_timeout * 1000 or math.min(timeout, 5000),
                      send = timeout, read = timeout }
    self.verify_tls = o.verify_tls ~= false
    self.retries = o.retries or 0
    self.retry_delay, self.max_retry_delay = o.retry_delay, o.max_retry_delay
    self.retry_mode, self.log = o.retry_mode, o.log
    self.keepalive_timeout = 60000
    self.pool_size = o.pool_size or 32
    self.pools = {}
    self.in_nginx = true
    return setmetatable(self, Ngx)
end

return _M
