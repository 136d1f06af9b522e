-- The emulator's limits against resource abuse (from a security audit): a
-- deadline on request heads, a cap on the connections of one client
-- address, a bound on the body of every route and on the messages of both
-- WebSocket endpoints, sockets closed when a WebSocket peer vanishes, and
-- RFC 6455's rules for what clients send.  Loopback only, a few hundred
-- connections at most, every wait bounded.
local socket = require "cqueues.socket"
local errno = require "cqueues.errno"
local env = require "helpers.env"
local core = require "signalr.core"
local cjson = require "cjson"
local msgpack = require "signalr_emulator.msgpack"

local now = core.monotonic
local MASK = "\55\66\77\88"

local function token(aud)
    return core.jwt_sign(cjson.encode { aud = "http://localhost" .. aud, exp = os.time() + 60 }, env.KEY)
end

-- A raw TCP connection to port, connected; errors are returned, a timeout
-- can be waited out again.
local function connect(port)
    local s = assert(socket.connect("127.0.0.1", port))
    s:setmode("b", "b")
    s:onerror(function(sock, _, why)
        if why == errno.ETIMEDOUT then sock:clearerr() end
        return why
    end)
    assert(s:connect(5))
    return s
end

-- Whether the emulator closes s within t seconds; and what it sent before.
local function closed_within(s, t)
    local deadline, got = now() + t, {}
    while true do
        local data, why = s:xread(-65536, "b", math.max(0, deadline - now()))
        if data then
            got[#got + 1] = data
        elseif why == errno.ETIMEDOUT then
            return false, table.concat(got)
        else
            return true, table.concat(got) -- the end of the stream, or a reset
        end
    end
end

local function count(s, plain)
    local n, i = 0, 1
    while true do
        local j = s:find(plain, i, true)
        if not j then return n end
        n, i = n + 1, j + 1
    end
end

-- GET (HEAD with head) path from 127.0.0.2, another client address: the
-- body (nil unless the status is 2xx).
local function from_elsewhere(emu, path, head)
    local p = io.popen(env.CLEAN .. "curl -s -f -m 5 --interface 127.0.0.2 " .. (head and "-I " or "")
        .. emu.base .. path)
    local body = p:read("*a")
    return p:close() and body or nil
end

local function health_from_elsewhere(emu)
    return from_elsewhere(emu, "/api/v1/health", true) and 200
end

-- The XOR of s with a 4-byte key, as a client masks a frame.
local function xor(s, key)
    local out = {}
    for i = 1, #s do out[i] = string.char(s:byte(i) ~ key:byte((i - 1) % 4 + 1)) end
    return table.concat(out)
end

-- A frame as a client sends it: masked with key (MASK by default), or
-- not at all when key is false; len: the length to declare (the payload's).
local function frame(fin, opcode, payload, key, len)
    len = len or #payload
    local m = key == false and 0 or 128
    local head = string.char((fin and 128 or 0) + opcode)
    if len < 126 then head = head .. string.char(m + len)
    elseif len < 65536 then head = head .. string.char(m + 126) .. string.pack(">I2", len)
    else head = head .. string.char(m + 127) .. string.pack(">I8", len) end
    if key == false then return head .. payload end
    key = key or MASK
    return head .. key .. (key == "\0\0\0\0" and payload or xor(payload, key))
end

-- The next frame the emulator sends on s: opcode, payload; nil when none
-- came within t seconds.
local function read_frame(s, t)
    local deadline = now() + t
    local function read(n)
        if n == 0 then return "" end
        local d = s:xread(n, "b", math.max(0.01, deadline - now()))
        return type(d) == "string" and #d == n and d or nil
    end
    local h = read(2)
    if not h then return nil end
    local len = h:byte(2) % 128
    if len == 126 then len = string.unpack(">I2", read(2) or "\0\0")
    elseif len == 127 then len = string.unpack(">I8", read(8) or ("\0"):rep(8)) end
    local payload = read(len)
    return payload and h:byte(1) % 16, payload
end

-- The code of the close frame the emulator sends next (frames before it
-- are read over; nil: none within 5 s), and whether it then closes the
-- connection within a second.
local function close_code(s)
    local deadline = now() + 5
    while now() < deadline do
        local op, payload = read_frame(s, deadline - now())
        if not op then return nil end
        if op == 8 then
            return #payload >= 2 and string.unpack(">I2", payload) or 1005, (closed_within(s, 1))
        end
    end
end

-- GET target with a WebSocket upgrade: the connection, switched.
local function upgrade(emu, target, extra)
    local s = connect(emu.port)
    s:write("GET " .. target .. " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        .. "Sec-WebSocket-Version: 13\r\n" .. (extra or "") .. "\r\n")
    s:flush()
    local status = s:xread("*l", "b", 5) or ""
    assert.truthy(status:find("^HTTP/1%.1 101"), status)
    repeat local l = s:xread("*l", "b", 5) until l == "" or l == "\r" or type(l) ~= "string"
    return s
end

-- A client's WebSocket to /client/ (negotiated, before the hub handshake).
local function client_ws(emu)
    local tok = token("/client/?hub=chat")
    local status, body = emu:http("POST", "/client/negotiate?hub=chat&negotiateVersion=1", "",
        { Authorization = "Bearer " .. tok })
    assert.equal(200, status)
    return upgrade(emu, "/client/?hub=chat&id=" .. cjson.decode(body).connectionToken .. "&access_token=" .. tok)
end

local HANDSHAKE = '{"protocol":"json","version":1}\30'

-- A client after its hub handshake (the emulator's answer read).
local function joined_client(emu)
    local s = client_ws(emu)
    s:write(frame(true, 1, HANDSHAKE))
    s:flush()
    local op, payload = read_frame(s, 5)
    assert.equal(1, op)
    assert.equal("{}\30", payload)
    return s
end

-- A server connection to /server/ after its handshake ([1, 1]).
local function server_ws(emu)
    local s = upgrade(emu, "/server/?hub=chat&cid=limits", "Authorization: Bearer " .. token("/server/?hub=chat")
        .. "\r\n")
    s:write(frame(true, 2, msgpack.varint(3) .. "\146\1\1"))
    s:flush()
    local op, payload = read_frame(s, 5)
    assert.equal(2, op)
    assert.truthy(payload and payload:find("limits", 1, true), "no handshake answer")
    return s
end

-- Sockets of process pid: how many, and how many in CLOSE-WAIT.
local function sockets(pid)
    local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
    local inodes, n = {}, 0
    for inode in p:read("*a"):gmatch("socket:%[(%d+)%]") do
        inodes[inode] = true
        n = n + 1
    end
    p:close()
    local close_wait = 0
    for _, table_ in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
        for line in (env.read(table_) or ""):gmatch("[^\n]+") do
            -- sl local remote st tx:rx tr:when retrnsmt uid timeout inode
            local st, inode = line:match("^%s*%d+:%s+%S+%s+%S+%s+(%x%x)%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
            if st == "08" and inodes[inode] then close_wait = close_wait + 1 end
        end
    end
    return n, close_wait
end

describe("signalr-emulator limits", function()
    local emu
    setup(function()
        emu = env.emulator("--head-timeout 1 --max-body 65536 --max-server-message 1048576"
            .. " --entra-app limits-app:limits-secret")
    end)
    teardown(function() emu:stop() end)

    describe("request heads (--head-timeout 1)", function()
        it("a head that trickles in is answered 408 and closed at the deadline", function()
            local s = connect(emu.port)
            local t0 = now()
            s:write("GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            s:flush()
            local closed, got
            repeat
                s:write("a")
                s:flush()
                closed, got = closed_within(s, 0.2)
            until closed or now() - t0 > 5
            local took = now() - t0
            s:close()
            assert.is_true(closed, "the connection was kept for 5 s")
            assert.is_true(took > 0.8 and took < 2.5, "closed after " .. took .. " s")
            assert.truthy(got:find("^HTTP/1%.1 408"), got)
        end)

        it("a connection that sends nothing is closed at the deadline", function()
            local s = connect(emu.port)
            local t0 = now()
            local closed = closed_within(s, 4)
            s:close()
            assert.is_true(closed, "a silent connection was kept for 4 s")
            assert.is_true(now() - t0 < 2.5, "closed after " .. (now() - t0) .. " s")
        end)

        it("a slow head that is whole within the deadline is served", function()
            local s = connect(emu.port)
            for _, part in ipairs { "HEAD /api/v1/he", "alth HTTP/1.1\r\n", "Host: local", "host\r\n", "\r\n" } do
                s:write(part)
                s:flush()
                env.sleep(0.1)
            end
            local _, got = closed_within(s, 1)
            s:close()
            assert.truthy(got:find("^HTTP/1%.1 200"), got)
        end)

        it("300 connections trickling heads are all cut at the deadline; health answers meanwhile", function()
            local conns, t0 = {}, now()
            for i = 1, 300 do
                conns[i] = connect(emu.port)
                conns[i]:write("GET /api/v1/health HTTP/1.1\r\nX-Slow: ")
                conns[i]:flush()
            end
            local open, healthy, gone = #conns, nil, {}
            while open > 0 and now() - t0 < 6 do
                open = 0
                for i, s in ipairs(conns) do
                    if not gone[i] then
                        s:write("b")
                        s:flush()
                        if closed_within(s, 0) then gone[i] = true else open = open + 1 end
                    end
                end
                if healthy == nil then healthy = health_from_elsewhere(emu) end
                env.sleep(0.2)
            end
            for _, s in ipairs(conns) do s:close() end
            assert.equal(200, healthy)
            assert.equal(0, open, open .. " of 300 connections still open after " .. (now() - t0) .. " s")
            assert.is_true(now() - t0 < 4, "the last closed after " .. (now() - t0) .. " s")
            assert.is_true(emu:stats().head_timeouts >= 300)
        end)
    end)

    describe("bodies", function()
        it("negotiate with a valid token reads at most --max-body: 413, connection closed", function()
            local tok = token("/client/?hub=chat")
            local s = connect(emu.port)
            s:write("POST /client/negotiate?hub=chat&negotiateVersion=1 HTTP/1.1\r\nHost: localhost\r\n"
                .. "Authorization: Bearer " .. tok .. "\r\nTransfer-Encoding: chunked\r\n\r\n")
            local chunk, sent = string.rep("n", 16 * 1024), 0
            for _ = 1, 64 do -- 1 MiB, 16 times the limit
                if not s:write(string.format("%x\r\n", #chunk), chunk, "\r\n") or not s:flush() then break end
                sent = sent + 1
            end
            if sent == 64 then s:write("0\r\n\r\n") s:flush() end
            local closed, got = closed_within(s, 5)
            s:close()
            assert.truthy(got:find("^HTTP/1%.1 413"), got)
            assert.is_true(closed)
        end)

        it("the Entra ID token endpoint reads at most 64 KB: 413", function()
            local body = "grant_type=client_credentials&client_id=limits-app&client_secret=limits-secret"
                .. "&scope=https%3A%2F%2Fsignalr.azure.com%2F.default&padding=" .. string.rep("p", 128 * 1024)
            local status = emu:http("POST", "/tenant/oauth2/v2.0/token", body,
                { ["Content-Type"] = "application/x-www-form-urlencoded" })
            assert.equal(413, status)
            status = emu:http("POST", "/tenant/oauth2/v2.0/token", body:gsub("&padding=.*", ""),
                { ["Content-Type"] = "application/x-www-form-urlencoded" })
            assert.equal(200, status)
        end)
    end)

    describe("WebSocket messages", function()
        it("a server frame that declares 2^62 bytes: close 1009 from its header", function()
            local s = server_ws(emu)
            s:write(frame(true, 2, "", MASK, 2 ^ 62))
            s:flush()
            local code, closed = close_code(s)
            s:close()
            assert.equal(1009, code)
            assert.is_true(closed)
        end)

        it("a server message over --max-server-message in frames: close 1009 at the frame past it", function()
            local s = server_ws(emu)
            local part = string.rep("\0", 600 * 1024)
            s:write(frame(false, 2, part, "\0\0\0\0"))
            -- the next 600 KB would pass the 1 MiB limit: its header is enough
            s:write(frame(true, 0, "", MASK, #part))
            s:flush()
            local code, closed = close_code(s)
            s:close()
            assert.equal(1009, code)
            assert.is_true(closed)
        end)

        it("a server message under the limit is carried out", function()
            local before = emu:stats().server_messages
            local s = server_ws(emu)
            -- BroadcastData [10, [], {json: 900 KB}] with its varint length
            local data = string.rep("d", 900 * 1024)
            local body = "\147\10\144\129\164json\198" .. string.pack(">I4", #data) .. data
            s:write(frame(true, 2, msgpack.varint(#body) .. body, "\0\0\0\0"))
            s:flush()
            env.wait(function() return emu:stats().server_messages >= before + 2 end, 5,
                "the handshake and the data message to be counted")
            s:write(frame(true, 8, "\3\232"))
            s:flush()
            assert.equal(1000, (close_code(s)))
            s:close()
        end)

        it("a client frame that declares 2^62 bytes: close 1009", function()
            local s = joined_client(emu)
            s:write(frame(true, 1, "", MASK, 2 ^ 62))
            s:flush()
            local code, closed = close_code(s)
            s:close()
            assert.equal(1009, code)
            assert.is_true(closed)
        end)
    end)

    describe("RFC 6455 rules for client frames", function()
        it("an unmasked frame: close 1002 (the handshake, a later message, a server's)", function()
            local s = client_ws(emu)
            s:write(frame(true, 1, HANDSHAKE, false))
            s:flush()
            local code, closed = close_code(s)
            s:close()
            assert.equal(1002, code)
            assert.is_true(closed)

            s = joined_client(emu)
            s:write(frame(true, 1, '{"type":6}\30', false))
            s:flush()
            code, closed = close_code(s)
            s:close()
            assert.equal(1002, code)
            assert.is_true(closed)

            s = server_ws(emu)
            s:write(frame(true, 2, msgpack.varint(2) .. "\145\3", false))
            s:flush()
            code, closed = close_code(s)
            s:close()
            assert.equal(1002, code)
            assert.is_true(closed)
        end)

        for name, bad in pairs { ["an invalid byte"] = "\255", ["a surrogate"] = "\237\160\128",
                                 ["an overlong form"] = "\192\175" } do
            it("text with " .. name .. ": close 1007, the connection closed at once", function()
                local s = joined_client(emu)
                s:write(frame(true, 1, '{"type":6,"x":"' .. bad .. '"}\30'))
                s:flush()
                local code, closed = close_code(s)
                s:close()
                assert.equal(1007, code)
                assert.is_true(closed, "the connection was kept after the close frame")
            end)
        end

        it("a character split across frames, a long masked handshake: served", function()
            local s = client_ws(emu)
            -- a handshake of 150 bytes, over the 32-byte blocks of the unmasking
            s:write(frame(true, 1, '{"protocol":"json","version":1,"x":"' .. string.rep("y", 100) .. '"}\30'))
            s:flush()
            assert.same({ 1, "{}\30" }, { read_frame(s, 5) })
            s:write(frame(false, 1, '{"type":6,"x":"\226\130'))
            s:write(frame(true, 0, '\172"}\30')) -- U+20AC in two frames
            s:write(frame(true, 8, "\3\232"))
            s:flush()
            assert.equal(1000, (close_code(s)))
            s:close()
        end)
    end)

    describe("WebSocket peers that vanish", function()
        it("30 clients gone without a close frame (closed or reset) leave no socket behind", function()
            local base = sockets(emu.pid)
            local before = emu:stats().clients
            local conns = {}
            for i = 1, 30 do
                if i % 2 == 0 then
                    conns[i] = joined_client(emu) -- nothing left unread: closed (FIN)
                else
                    -- the handshake's answer left unread: the close resets the connection
                    conns[i] = client_ws(emu)
                    conns[i]:write(frame(true, 1, HANDSHAKE))
                    conns[i]:flush()
                end
            end
            env.wait(function() return emu:stats().clients == before + 30 end, 5, "30 clients")
            env.sleep(0.2)
            for _, s in ipairs(conns) do s:close() end
            local n, close_wait
            local ok = pcall(env.wait, function()
                n, close_wait = sockets(emu.pid)
                return n <= base and close_wait == 0
            end, 5)
            assert.is_true(ok, string.format("5 s after: %d sockets (%d before), %d in CLOSE-WAIT",
                n, base, close_wait))
            assert.equal(before, emu:stats().clients)
        end)
    end)

    it("logs a flood of one rejection once", function()
        local log = env.read(emu.dir .. "/err") or ""
        assert.equal(1, count(log, "(--head-timeout)"), log:sub(1, 2000))
        assert.equal(1, count(log, "the body is over its limit: 413"), log:sub(1, 2000))
        assert.truthy(log:find("an unmasked frame", 1, true), log:sub(1, 2000))
        assert.truthy(log:find("(over 1048576 bytes, --max-server-message)", 1, true), log:sub(1, 2000))
    end)
end)

describe("signalr-emulator --max-conns-per-ip", function()
    local emu
    setup(function() emu = env.emulator("--max-conns-per-ip 40") end)
    teardown(function() emu:stop() end)

    it("closes connections past the cap at once, serves other addresses, and frees slots", function()
        local held = {}
        for i = 1, 40 do held[i] = connect(emu.port) end
        local t0 = now()
        for _ = 1, 100 do
            local s = connect(emu.port)
            local closed = closed_within(s, 1)
            s:close()
            assert.is_true(closed, "a connection past the cap was kept open")
        end
        assert.is_true(now() - t0 < 5, "100 refusals took " .. (now() - t0) .. " s")
        assert.equal(200, health_from_elsewhere(emu))
        local stats = cjson.decode(from_elsewhere(emu, "/_emulator/stats") or "{}")
        assert.equal(100, stats.refused_connections)
        -- the held connections are still served
        held[1]:write("HEAD /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        held[1]:flush()
        local _, got = closed_within(held[1], 1)
        assert.truthy(got:find("^HTTP/1%.1 200"), got)
        for _, s in ipairs(held) do s:close() end
        -- once they are gone, 127.0.0.1 is served again
        env.wait(function() return emu:http("HEAD", "/api/v1/health") == 200 end, 5, "a free slot")
        local log = env.read(emu.dir .. "/err") or ""
        assert.equal(1, count(log, "holds 40 connections (--max-conns-per-ip)"), log:sub(1, 2000))
    end)
end)
