-- The emulator under abuse (it is a server people run): malformed HTTP,
-- oversized bodies and headers, invalid UTF-8, many idle connections.  It
-- answers each with the right status, keeps serving everyone else, does not
-- spin, and its memory stays bounded (RSS before/after is printed).  All
-- traffic is on loopback, bounded in count and time.
local socket = require "cqueues.socket"
local env = require "helpers.env"
local core = require "signalr.core"
local cjson = require "cjson"

local function proc(pid, what)
    local f = io.open("/proc/" .. pid .. "/" .. what)
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

local function rss_kb(pid)
    return tonumber((proc(pid, "status") or ""):match("VmRSS:%s*(%d+)"))
end

-- user+system CPU seconds of the process
local function cpu_s(pid)
    local stat = proc(pid, "stat") or ""
    local fields = {}
    for f in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
    return ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / 100
end

-- Send raw bytes (a string, or a function that writes to the socket);
-- return the status of the reply ("none" when the connection closed
-- without one) and the whole reply.
local function raw(port, data, timeout)
    local s = assert(socket.connect("127.0.0.1", port))
    s:settimeout(timeout or 5)
    s:setmode("b", "b")
    -- return errors (a reset while we still write) instead of raising
    s:onerror(function(_, _, why) return why end)
    if type(data) == "function" then data(s) else s:write(data) end
    s:flush()
    local line = s:read("*l") or ""
    local rest = ""
    if line ~= "" then
        -- the rest up to the end of the head, and a short body if any
        local h = s:read("*h")
        rest = (type(h) == "string" and h or "") .. (s:read(-4096) or "")
    end
    s:close()
    return line:match("^HTTP/1%.1 (%d%d%d)") or "none", line .. "\n" .. rest
end

-- A token the emulator accepts for path (REST) or the client URL.
local function token_for(path)
    return core.jwt_sign(cjson.encode { aud = "http://localhost" .. path, exp = os.time() + 60 }, env.KEY)
end

describe("signalr-emulator under abuse", function()
    local emu, rss0
    setup(function()
        emu = env.emulator()
        rss0 = rss_kb(emu.pid)
    end)
    teardown(function()
        print(string.format("\n  emulator RSS: %d kB at start, %d kB after the abuse",
            rss0 or -1, rss_kb(emu.pid) or -1))
        emu:stop()
    end)

    local function healthy()
        assert.equal(200, (emu:http("HEAD", "/api/v1/health")))
    end

    local function send_path(body_len, extra)
        return "POST /api/hubs/chat/:send?api-version=2022-06-01 HTTP/1.1\r\nHost: localhost\r\n"
            .. (extra or "") .. (body_len and ("Content-Length: " .. body_len .. "\r\n") or "")
    end

    for _, cl in ipairs { "-5", "abc", "1e3", "5, 6", "99999999999999999999" } do
        it("Content-Length: " .. cl .. " -> 400, connection closed, still serving, no spinning", function()
            local status = raw(emu.port, send_path(cl) .. "\r\nhello")
            assert.equal("400", status)
            local before = cpu_s(emu.pid)
            env.sleep(1)
            assert.is_true(cpu_s(emu.pid) - before < 0.3, "the emulator is busy while idle")
            healthy()
        end)
    end

    it("a refusal sent before the body arrived: the body is read, the connection serves on,"
        .. " nothing spins", function()
        local sock = assert(socket.connect("127.0.0.1", emu.port))
        sock:settimeout(5)
        sock:setmode("b", "b")
        -- no token: 401 before the body is read; the body follows 0.3 s later
        local body = '{"target":"t","arguments":[]}'
        sock:write(send_path(#body) .. "\r\n")
        sock:flush()
        local line = sock:read("*l")
        assert.equal("401", line:match("^HTTP/1%.1 (%d+)"))
        local len
        for h in function() local l = sock:read("*l") return l and not l:match("^\r?$") and l or nil end do
            len = len or tonumber(h:match("^content%-length: *(%d+)"))
        end
        sock:read(len)
        env.sleep(0.3)
        sock:write(body)
        sock:flush()
        local before = cpu_s(emu.pid)
        -- the same connection answers the next request
        sock:write("HEAD /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock:flush()
        assert.equal("200", (sock:read("*l") or ""):match("^HTTP/1%.1 (%d+)"))
        sock:close()
        env.sleep(1)
        assert.is_true(cpu_s(emu.pid) - before < 0.3, "the emulator is busy while idle")
        healthy()
    end)

    it("two Content-Length headers, or Content-Length with chunked -> 400", function()
        assert.equal("400", (raw(emu.port, send_path(5, "Content-Length: 6\r\n") .. "\r\nhello")))
        assert.equal("400", (raw(emu.port,
            send_path(5, "Transfer-Encoding: chunked\r\n") .. "\r\n5\r\nhello\r\n0\r\n\r\n")))
        healthy()
    end)

    it("a 30 MB chunked body -> 413 without buffering it", function()
        local before = rss_kb(emu.pid)
        local chunk = string.rep("x", 64 * 1024)
        local status = raw(emu.port, function(s)
            s:write(send_path(nil, "Transfer-Encoding: chunked\r\nAuthorization: Bearer x\r\n") .. "\r\n")
            for _ = 1, 480 do
                local ok = s:write(string.format("%x\r\n", #chunk), chunk, "\r\n")
                if not ok then break end -- the emulator closed: enough
            end
        end, 10)
        -- 401 (the token is checked before the body is read) or 413
        assert.truthy(status == "413" or status == "401" or status == "none", status)
        assert.is_true(rss_kb(emu.pid) - before < 40 * 1024, "RSS grew by "
            .. (rss_kb(emu.pid) - before) .. " kB")
        healthy()
    end)

    it("a body over 1 MB with a valid token -> 413, RSS bounded", function()
        local path = "/api/hubs/chat/:send"
        local tok = token_for(path)
        local before = rss_kb(emu.pid)
        local big = string.rep("a", 8 * 1024 * 1024)
        local status = raw(emu.port, function(s)
            s:write("POST " .. path .. "?api-version=2022-06-01 HTTP/1.1\r\nHost: localhost\r\n"
                .. "Authorization: Bearer " .. tok .. "\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i = 1, 8 do
                local part = big:sub((i - 1) * 1048576 + 1, i * 1048576)
                if not s:write(string.format("%x\r\n", #part), part, "\r\n") then break end
            end
            s:write("0\r\n\r\n")
        end, 10)
        assert.equal("413", status)
        assert.is_true(rss_kb(emu.pid) - before < 40 * 1024)
        healthy()
    end)

    it("an oversized fault description on the unauthenticated admin route -> 413", function()
        local before = rss_kb(emu.pid)
        local status = raw(emu.port, function(s)
            s:write("POST /_emulator/faults HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
            local part = string.rep("y", 1048576)
            for _ = 1, 20 do
                if not s:write(string.format("%x\r\n", #part), part, "\r\n") then break end
            end
        end, 10)
        assert.truthy(status == "413" or status == "none", status)
        assert.is_true(rss_kb(emu.pid) - before < 40 * 1024)
        assert.equal(204, (emu:http("DELETE", "/_emulator/faults")))
        healthy()
    end)

    it("a 10 KB request line and a 12 KB header line get an answer; past 16 KB, 431", function()
        local long = string.rep("a", 10 * 1024)
        local status = raw(emu.port, "HEAD /api/hubs/chat/groups/" .. long
            .. "?api-version=2022-06-01 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert.equal("400", status) -- answered (the group is too long), not dropped
        status = raw(emu.port, "HEAD /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Big: "
            .. string.rep("b", 12 * 1024) .. "\r\n\r\n")
        assert.equal("200", status)
        status = raw(emu.port, "HEAD /api/hubs/chat?api-version=2022-06-01 HTTP/1.1\r\nHost: localhost\r\nX-A: "
            .. string.rep("b", 9000) .. "\r\nX-B: " .. string.rep("c", 9000) .. "\r\n\r\n")
        assert.equal("431", status)
        healthy()
    end)

    it("invalid UTF-8 in a target or argument -> 400, nothing forwarded", function()
        local path = "/api/hubs/chat/:send"
        local tok = token_for(path)
        for _, body in ipairs { '{"target":"t\255","arguments":[]}', '{"target":"t","arguments":["\192\175"]}' } do
            local status, reply = raw(emu.port, "POST " .. path .. "?api-version=2022-06-01 HTTP/1.1\r\n"
                .. "Host: localhost\r\nAuthorization: Bearer " .. tok .. "\r\nContent-Length: " .. #body
                .. "\r\nConnection: close\r\n\r\n" .. body)
            assert.equal("400", status)
            assert.truthy(reply:find("x-ms-error-code: Error.Message.Invalid", 1, true), reply)
        end
        local st, body = emu:http("POST", path .. "?api-version=2022-06-01", '{"target":"t\255"}',
            { Authorization = "Bearer " .. tok })
        assert.equal(400, st)
        assert.truthy(body:find("not valid UTF-8", 1, true), body)
        healthy()
    end)

    it("200 idle connections do not stop it serving others", function()
        local idle = {}
        for i = 1, 200 do
            idle[i] = assert(socket.connect("127.0.0.1", emu.port))
            idle[i]:write("GET /api/v1/hea") -- a request that never ends
            idle[i]:flush()
        end
        local t0 = core.monotonic()
        healthy()
        assert.is_true(core.monotonic() - t0 < 2)
        for _, s in ipairs(idle) do s:close() end
        healthy()
    end)

    -- A raw WebSocket client: negotiate, upgrade, handshake; returns the
    -- socket (frames it sends are masked, as RFC 6455 wants of clients).
    local function ws_client()
        local path = "/client/?hub=chat"
        local tok = token_for(path)
        local _, body = emu:http("POST", "/client/negotiate?hub=chat&negotiateVersion=1", "",
            { Authorization = "Bearer " .. tok })
        local id = cjson.decode(body).connectionToken
        local s = assert(socket.connect("127.0.0.1", emu.port))
        s:settimeout(10)
        s:setmode("b", "b")
        s:onerror(function(_, _, why) return why end)
        s:write("GET /client/?hub=chat&id=" .. id .. "&access_token=" .. tok .. " HTTP/1.1\r\n"
            .. "Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        s:flush()
        local status = s:read("*l") or ""
        assert.truthy(status:find("^HTTP/1%.1 101"), status)
        repeat local l = s:read("*l") until l == "" or l == "\r" or l == nil
        return s
    end
    -- one masked frame (mask 0: the payload goes as is)
    local function frame(fin, opcode, payload)
        local n, len = #payload
        if n < 126 then len = string.char(0x80 + n)
        elseif n < 65536 then len = string.char(0x80 + 126, math.floor(n / 256), n % 256)
        else
            len = string.char(0x80 + 127, 0, 0, 0, 0, math.floor(n / 16777216) % 256,
                math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
        end
        return string.char((fin and 0x80 or 0) + opcode) .. len .. "\0\0\0\0" .. payload
    end

    it("100 MB of continuation frames from a client: disconnected, memory bounded", function()
        local s = ws_client()
        s:write(frame(true, 1, '{"protocol":"json","version":1}\30'))
        s:flush()
        local before = rss_kb(emu.pid)
        local chunk = frame(false, 0, string.rep("z", 64 * 1024))
        local sent = 0
        s:write(frame(false, 1, "["))
        for _ = 1, 1600 do
            if not s:write(chunk) or not s:flush() then break end
            sent = sent + 1
        end
        s:close()
        assert.is_true(sent < 1600, "the emulator kept reading a 100 MB message")
        assert.is_true(rss_kb(emu.pid) - before < 20 * 1024, "RSS grew by "
            .. (rss_kb(emu.pid) - before) .. " kB")
        healthy()
    end)

    it("a 4 MB message of empty records is refused at once", function()
        local s = ws_client()
        s:write(frame(true, 1, '{"protocol":"json","version":1}\30'))
        s:flush()
        local t0 = core.monotonic()
        s:write(frame(true, 1, string.rep("\30", 4 * 1024 * 1024)))
        s:flush()
        s:close()
        healthy()
        assert.is_true(core.monotonic() - t0 < 2)
    end)

    it("logs the reason for each rejection", function()
        local log = env.read(emu.dir .. "/err") or ""
        assert.truthy(log:find("malformed Content-Length; connection closed", 1, true)
            or log:find("invalid content-length; connection closed", 1, true), log:sub(1, 500))
        assert.truthy(log:find("a message over 65536 bytes: disconnected", 1, true), log:sub(1, 800))
    end)
end)
