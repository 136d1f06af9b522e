-- The emulator in the service's Default and Classic modes (--service-mode):
-- clients routed to hub servers.  The hub server here is a small one
-- written in the spec (a WebSocket to /server/ speaking the service
-- protocol: OpenConnection in, ConnectionData both ways, CloseConnection
-- both ways); the clients are real @microsoft/signalr clients (JSON and
-- MessagePack; WebSockets, Server-Sent Events, Long Polling).  Loopback
-- only; every wait is bounded.
local env = require "helpers.env"
local core = require "signalr.core"
local cjson = require "cjson"
local msgpack = require "signalr_emulator.msgpack"

-- Debian packages lua-http for Lua 5.1-5.3; under 5.4 its pure-Lua
-- modules load from there (as bin/signalr-emulator does)
if not pcall(require, "http.websocket") then
    for _, v in ipairs { "5.3", "5.2", "5.1" } do
        package.path = package.path .. ";/usr/share/lua/" .. v .. "/?.lua;/usr/share/lua/" .. v .. "/?/init.lua"
    end
end
local websocket = require "http.websocket"

local mp = msgpack.mp
local RS = "\30"
local now = core.monotonic
local NO_SERVER = "SignalR Service is now in 'Default' service mode. Current mode works as a proxy"
    .. " that routes client traffic to the connected app servers. However app servers are not connected."

local function bin(s)
    if #s < 256 then return "\196" .. string.char(#s) .. s end
    if #s < 65536 then return "\197" .. string.pack(">I2", #s) .. s end
    return "\198" .. string.pack(">I4", #s) .. s
end

-- The next varint-prefixed message of buf from i: its body and the index
-- after it, or nil when it has not all arrived.
local function next_message(buf, i)
    local len, shift, j = 0, 0, i
    while true do
        local b = buf:byte(j)
        if not b then return nil end
        len = len + (b % 128) * 2 ^ shift
        shift, j = shift + 7, j + 1
        if b < 128 then break end
    end
    len = math.floor(len)
    if j + len - 1 > #buf then return nil end
    return buf:sub(j, j + len - 1), j + len
end

-- ===== a hub server, in the spec =====
local live = {} -- hub servers to pump while waiting

local Hub = {}
Hub.__index = Hub

--- Open a server connection of type (default 0) to hub and handshake.
-- auto (default true): answer client handshakes ({}), "echo" calls (the
-- first argument), "fail" calls (an error), and "shout" sends (an
-- invocation of newMessage back to the client).
local function hub_server(emu, hub, o)
    o = o or {}
    local cid = o.cid or ("hs-" .. math.random(1, 1e9))
    local tok = core.jwt_sign(cjson.encode { aud = "http://localhost/server/?hub=" .. hub,
                                             exp = os.time() + 600 }, env.KEY)
    local ws = websocket.new_from_uri(string.format("ws://127.0.0.1:%d/server/?hub=%s&cid=%s",
        emu.port, hub, cid))
    ws.request.headers:upsert("authorization", "Bearer " .. tok)
    assert(ws:connect(5))
    local self = setmetatable({ ws = ws, cid = cid, buf = "", clients = {}, order = {}, acks = {},
                                types = {}, auto = o.auto ~= false }, Hub)
    live[self] = true
    -- HandshakeRequest [1, version 1, type, target "", migration 0, {}]
    self:send_body("\150\1\1" .. mp.pack(o.type or 0) .. "\160\0\128")
    local deadline = now() + 5
    while not self.handshake and now() < deadline do self:pump(0.1) end
    assert(self.handshake, "no handshake answer")
    assert.equal("", self.handshake[2] or "")
    return self
end

function Hub:send_body(body)
    assert(self.ws:send(msgpack.varint(#body) .. body, "binary"))
end

--- ConnectionData [6, id, payload, Ext] (Ext {6: true} when partial).
function Hub:data(id, payload, partial)
    self:send_body("\148\6" .. mp.pack(id) .. bin(payload) .. (partial and "\129\6\195" or "\128"))
end

--- CloseConnection [5, id, error, {}, {}].
function Hub:close_client(id, err)
    self:send_body("\149\5" .. mp.pack(id) .. mp.pack(err or "") .. "\128\128")
end

-- A hub message to client c, framed in its protocol.
local function completion(c, inv, result, err)
    if c.protocol == "messagepack" then
        local body = "\149\3\128" .. mp.pack(inv) .. (err and ("\1" .. mp.pack(err)) or ("\3" .. mp.pack(result)))
        return msgpack.varint(#body) .. body
    end
    return cjson.encode { type = 3, invocationId = inv, result = not err and result or nil, error = err } .. RS
end

local function invocation(c, target, args)
    if c.protocol == "messagepack" then
        local body = "\150\1\128\192" .. mp.pack(target) .. mp.pack(args) .. "\144"
        return msgpack.varint(#body) .. body
    end
    return cjson.encode { type = 1, target = target, arguments = args } .. RS
end

-- The hub messages of c's stream (after its handshake), as records.
local function hub_messages(c)
    local out = {}
    if c.protocol == "messagepack" then
        local i = 1
        while true do
            local body, nexti = next_message(c.data, i)
            if not body then break end
            i = nexti
            local a = mp.unpack(body)
            out[#out + 1] = { type = a[1], invocationId = a[1] == 1 and a[3] or nil,
                              target = a[1] == 1 and a[4] or nil, arguments = a[1] == 1 and a[5] or nil }
        end
        c.data = c.data:sub(i)
    else
        local last = 0
        for rec, e in c.data:gmatch("([^" .. RS .. "]*)" .. RS .. "()") do
            out[#out + 1] = cjson.decode(rec)
            last = e
        end
        c.data = c.data:sub(last > 0 and last or 1)
    end
    return out
end

function Hub:on_data(c, payload)
    c.bytes[#c.bytes + 1] = payload
    c.data = c.data .. payload
    if not c.handshake then
        local hs = c.data:match("^([^" .. RS .. "]*)" .. RS)
        if not hs then return end
        c.handshake_raw = hs .. RS
        c.handshake = cjson.decode(hs)
        c.data = c.data:sub(#hs + 2)
        if self.auto then self:data(c.id, "{}" .. RS) end
    end
    for _, r in ipairs(hub_messages(c)) do
        c.got[#c.got + 1] = r
        if self.auto and r.type == 1 then
            if r.target == "echo" and r.invocationId then
                self:data(c.id, completion(c, r.invocationId, r.arguments[1]))
            elseif r.target == "fail" and r.invocationId then
                self:data(c.id, completion(c, r.invocationId, nil, "it failed on purpose"))
            elseif r.target == "shout" then
                self:data(c.id, invocation(c, "newMessage", r.arguments))
            end
        end
    end
end

function Hub:on(m, body)
    local t = m[1]
    self.types[t] = (self.types[t] or 0) + 1
    if t == 2 then
        self.handshake = m
    elseif t == 4 then
        local c = { id = m[2], claims = m[3], headers = m[4], query = m[5], protocol = m[6] and m[6][3],
                    raw = body, data = "", bytes = {}, got = {} }
        self.clients[c.id] = c
        self.order[#self.order + 1] = c
    elseif t == 6 then
        local c = self.clients[m[2]]
        if c then self:on_data(c, m[3]) end
    elseif t == 5 then
        local c = self.clients[m[2]]
        if c then c.closed = { error = m[3], n = #m } end
    elseif t == 20 then
        self.acks[m[2]] = m[3]
    end
end

--- Read what came within timeout seconds and act on it.
function Hub:pump(timeout)
    if self.gone then return end
    local data, _, errno = self.ws:receive(timeout)
    if not data then
        if errno ~= require("cqueues.errno").ETIMEDOUT or self.ws.readyState == 3 then
            self.gone = true
            live[self] = nil
        end
        return
    end
    self.buf = self.buf .. data
    local i = 1
    while true do
        local body, nexti = next_message(self.buf, i)
        if not body then break end
        i = nexti
        self:on(mp.unpack(body), body)
    end
    self.buf = self.buf:sub(i)
end

function Hub:close()
    live[self] = nil
    self.gone = true
    pcall(self.ws.close, self.ws, 1000, "", 1)
end

--- The client of this hub server with connection id (or the n-th).
function Hub:client(id)
    if type(id) == "number" then return self.order[id] end
    return self.clients[id]
end

-- Wait (pumping every live hub server) until fn() is truthy.
local function wait(fn, timeout, what)
    local deadline = now() + (timeout or 10)
    while true do
        local v = fn()
        if v then return v end
        if now() > deadline then error("timed out waiting for " .. (what or "condition"), 2) end
        local any = false
        for h in pairs(live) do
            any = true
            h:pump(0.02)
        end
        if not any then env.sleep(0.05) end
    end
end

-- ===== clients =====

local function client_token(emu, hub, user)
    return core.jwt_sign(cjson.encode {
        aud = "http://localhost:" .. emu.port .. "/client/?hub=" .. hub, exp = os.time() + 600,
        iat = os.time(), nameid = user, ["asrs.s.uid"] = user, role = { "reader", "writer" },
    }, env.KEY)
end

local function event(pool, name, kinds, after)
    local n = 0
    for _, ev in ipairs(pool:events()) do
        if ev.name == name and kinds[ev.ev] then
            n = n + 1
            if n > (after or 0) then return ev end
        end
    end
end

--- Start client name on hub (pumping hub servers meanwhile): its
-- "connected" or "failed" event.
local function connect(pool, emu, hub, name, o)
    o = o or {}
    pool:send { cmd = "connect", name = name, url = emu.base .. "/client/?hub=" .. hub .. "&tenant=t1",
                accessToken = client_token(emu, hub, o.user or name), targets = { "newMessage" },
                protocol = o.protocol, transport = o.transport, results = o.results }
    return wait(function() return event(pool, name, { connected = true, failed = true }) end, 20,
        "client " .. name .. " to connect")
end

local function call(pool, name, id, target, args)
    pool:send { cmd = "call", name = name, id = id, target = target, args = args }
    return wait(function()
        for _, ev in ipairs(pool:events()) do
            if ev.name == name and ev.id == id and (ev.ev == "result" or ev.ev == "call_failed") then return ev end
        end
    end, 10, name .. "'s call " .. id)
end

local function closed(pool, name)
    return wait(function() return event(pool, name, { closed = true }) end, 10, name .. " to close")
end

local function messages(pool, name)
    local out = {}
    for _, m in ipairs(pool:messages(name)) do out[#out + 1] = m.args end
    return out
end

local function rest_send(emu, path, body)
    local p = "/api/hubs/" .. path
    local tok = core.jwt_sign(cjson.encode { aud = "http://localhost" .. p, exp = os.time() + 60 }, env.KEY)
    return emu:http("POST", p .. "?api-version=2022-06-01", body,
        { Authorization = "Bearer " .. tok, ["Content-Type"] = "application/json" })
end

local function admin(emu, path)
    local status, body = emu:http("GET", path)
    assert.equal(200, status)
    return cjson.decode(body)
end

local function count(s, plain)
    local n, i = 0, 1
    while true do
        local j = s:find(plain, i, true)
        if not j then return n end
        n, i = n + 1, j + 1
    end
end

-- ===== Default mode =====

describe("emulator --service-mode default", function()
    local emu, pool
    setup(function()
        emu = env.emulator("--service-mode default")
        pool = env.clients(emu)
    end)
    teardown(function()
        for h in pairs(live) do h:close() end
        pool:quit()
        emu:stop()
    end)

    local n = 0
    local function fresh(prefix)
        n = n + 1
        return prefix .. n
    end

    for _, case in ipairs {
        { "JSON over WebSockets", "json", nil },
        { "MessagePack over WebSockets", "messagepack", nil },
        { "JSON over Server-Sent Events", "json", "ServerSentEvents" },
        { "JSON over Long Polling", "json", "LongPolling" },
        { "MessagePack over Long Polling", "messagepack", "LongPolling" },
    } do
        it("routes a client (" .. case[1] .. ") to the hub server both ways", function()
            local hub = fresh("hub")
            local hs = hub_server(emu, hub)
            local name = fresh("c")
            local ev = connect(pool, emu, hub, name, { protocol = case[2], transport = case[3], user = "alice" })
            assert.equal("connected", ev.ev, ev.error)
            local c = hs:client(1)
            assert.truthy(c, "no OpenConnection")
            -- OpenConnection: the client's id, claims, headers, query, protocol
            assert.equal(ev.connectionId, c.id)
            assert.equal("alice", c.claims["asrs.s.uid"])
            assert.equal("alice", c.claims.nameid)
            assert.equal(case[2], c.protocol)
            assert.truthy(c.query:find("^%?"), c.query)
            assert.truthy(c.query:find("tenant=t1", 1, true), c.query)
            assert.truthy(c.query:find("hub=" .. hub, 1, true), c.query)
            assert.equal("table", type(c.headers["user-agent"]), "no user-agent header")
            assert.equal("string", type(c.headers.host[1]))
            -- an array claim is one claim per value: the map repeats the key
            assert.equal(2, count(c.raw, mp.pack("role")))
            -- its first bytes: the hub handshake request, as the client sent it
            assert.equal(case[2], c.handshake.protocol)
            assert.equal(1, c.handshake.version)
            assert.equal(c.handshake_raw, c.bytes[1]:sub(1, #c.handshake_raw))
            -- invoke: the hub server's Completion resolves it
            local r = call(pool, name, "q1", "echo", { 42 })
            assert.equal("result", r.ev, r.error)
            assert.equal(42, r.result)
            r = call(pool, name, "q2", "fail", { 1 })
            assert.equal("call_failed", r.ev)
            assert.truthy(r.error:find("it failed on purpose", 1, true), r.error)
            -- send: reaches the hub server without an invocation id; its
            -- invocation back reaches the client
            pool:send { cmd = "invoke", name = name, target = "shout", args = { "hello", 7 } }
            wait(function() return #messages(pool, name) >= 1 end, 10, "the shout back")
            assert.same({ "hello", 7 }, messages(pool, name)[1])
            local shout
            for _, m in ipairs(c.got) do if m.target == "shout" then shout = m end end
            assert.truthy(shout, "the hub server got no shout")
            assert.is_nil(shout.invocationId)
            -- a REST broadcast reaches routed clients, in their protocol
            assert.equal(202, (rest_send(emu, hub .. "/:send",
                '{"target":"newMessage","arguments":["rest",{"a":[1,2]}]}')))
            wait(function() return #messages(pool, name) >= 2 end, 10, "the REST broadcast")
            assert.same({ "rest", { a = { 1, 2 } } }, messages(pool, name)[2])
            -- the client leaves: CloseConnection [5, id, "", ...] to its server
            pool:send { cmd = "stop", name = name }
            wait(function() return c.closed end, 10, "CloseConnection")
            assert.equal("", c.closed.error)
            hs:close()
        end)
    end

    it("counts OpenConnection, ConnectionData and CloseConnection; lists routed clients", function()
        local hub = fresh("hub")
        local before = emu:stats()
        local hs = hub_server(emu, hub)
        local ev = connect(pool, emu, hub, fresh("c"))
        assert.equal("connected", ev.ev, ev.error)
        local servers = admin(emu, "/_emulator/servers")
        local mine
        for _, s in ipairs(servers) do if s.id == hs.cid then mine = s end end
        assert.same({ id = hs.cid, hub = hub, handshaken = true, type = 0, carries_clients = true, clients = 1 }, mine)
        local listed
        for _, c in ipairs(admin(emu, "/_emulator/clients")) do
            if c.id == ev.connectionId then listed = c end
        end
        assert.equal(hs.cid, listed.server)
        local after = emu:stats()
        assert.equal("default", after.service_mode)
        assert.equal(before.open_connection_sent + 1, after.open_connection_sent)
        assert.truthy(after.connection_data_sent >= before.connection_data_sent + 1)
        assert.truthy(after.connection_data_received >= before.connection_data_received + 1)
        hs:close_client(ev.connectionId, "")
        closed(pool, ev.name)
        wait(function() return emu:stats().close_connection_received == before.close_connection_received + 1 end,
            5, "the CloseConnection to be counted")
        hs:close()
    end)

    it("without a hub server, the handshake fails with the service's Default-mode error", function()
        local hub = fresh("hub")
        local ev = connect(pool, emu, hub, fresh("c"))
        assert.equal("failed", ev.ev)
        assert.truthy(ev.error:find(NO_SERVER, 1, true), ev.error)
        -- a Weak (management) connection carries no clients
        local weak = hub_server(emu, hub, { type = 2 })
        ev = connect(pool, emu, hub, fresh("c"))
        assert.equal("failed", ev.ev)
        assert.truthy(ev.error:find(NO_SERVER, 1, true), ev.error)
        assert.is_nil(weak:client(1))
        weak:close()
    end)

    it("the hub server's CloseConnection closes the client, after what it sent before", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"))
        local b = connect(pool, emu, hub, fresh("c"))
        assert.equal("connected", a.ev)
        assert.equal("connected", b.ev)
        local ca = hs:client(a.connectionId)
        hs:data(a.connectionId, invocation(ca, "newMessage", { "last words" }))
        hs:close_client(a.connectionId, "")
        local e = closed(pool, a.name)
        assert.is_true(e.error == nil or e.error == cjson.null, tostring(e.error))
        assert.same({ { "last words" } }, messages(pool, a.name))
        -- with an error: the client is told why
        hs:close_client(b.connectionId, "kicked out")
        e = closed(pool, b.name)
        assert.truthy(e.error and e.error:find("kicked out", 1, true), tostring(e.error))
        -- and no CloseConnection comes back for a close the server asked for
        hs:pump(0.3)
        assert.is_nil(ca.closed)
        hs:close()
    end)

    it("a hub server's connection that goes closes its clients (ServerOffline)", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"))
        local b = connect(pool, emu, hub, fresh("c"), { transport = "LongPolling" })
        assert.equal("connected", a.ev)
        assert.equal("connected", b.ev)
        hs:close()
        for _, name in ipairs { a.name, b.name } do
            local e = closed(pool, name)
            assert.truthy(e.error and e.error:find("ServerOffline", 1, true), tostring(e.error))
        end
        -- and the hub has no hub server now
        local ev = connect(pool, emu, hub, fresh("c"))
        assert.equal("failed", ev.ev)
    end)

    it("a hub server gone before it answered the handshake: the handshake fails (ServerOffline)", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub, { auto = false })
        local name = fresh("c")
        pool:send { cmd = "connect", name = name, url = emu.base .. "/client/?hub=" .. hub,
                    accessToken = client_token(emu, hub, "u"), targets = { "newMessage" } }
        wait(function() local c = hs:client(1) return c and c.handshake end, 10, "the handshake request")
        hs:close()
        local ev = wait(function() return event(pool, name, { connected = true, failed = true }) end, 10)
        assert.equal("failed", ev.ev)
        assert.truthy(ev.error:find("ServerOffline", 1, true), ev.error)
    end)

    it("a REST close: the client is told why, its hub server gets CloseConnection", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"))
        local p = "/api/hubs/" .. hub .. "/connections/" .. a.connectionId
        local tok = core.jwt_sign(cjson.encode { aud = "http://localhost" .. p, exp = os.time() + 60 }, env.KEY)
        assert.equal(200, (emu:http("DELETE", p .. "?api-version=2022-06-01&reason=bye",
            nil, { Authorization = "Bearer " .. tok })))
        local e = closed(pool, a.name)
        assert.truthy(e.error and e.error:find("bye", 1, true), tostring(e.error))
        local c = hs:client(a.connectionId)
        wait(function() return c.closed end, 10, "CloseConnection")
        assert.equal("", c.closed.error)
        assert.equal(5, c.closed.n)
        hs:close()
    end)

    it("DELETE /_emulator/servers drops hub servers and their clients", function()
        local hub = fresh("hub")
        hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"))
        assert.equal("connected", a.ev)
        assert.equal(200, (emu:http("DELETE", "/_emulator/servers")))
        closed(pool, a.name)
    end)

    it("spreads clients over the hub's server connections, each client staying on its own", function()
        local hub = fresh("hub")
        local h1, h2 = hub_server(emu, hub), hub_server(emu, hub, { type = 1 })
        local names = {}
        for i = 1, 4 do
            local ev = connect(pool, emu, hub, fresh("c"))
            assert.equal("connected", ev.ev, ev.error)
            names[i] = ev
        end
        assert.equal(2, #h1.order)
        assert.equal(2, #h2.order)
        -- each client's calls go to the server it was routed to
        for i, ev in ipairs(names) do
            local r = call(pool, ev.name, "s" .. i, "echo", { i })
            assert.equal(i, r.result)
            local owner = h1:client(ev.connectionId) and h1 or h2
            local other = owner == h1 and h2 or h1
            assert.is_nil(other:client(ev.connectionId))
        end
        h1:close()
        h2:close()
    end)

    it("takes ConnectionData in fragments (Ext 6 IsPartial)", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub, { auto = false })
        local name = fresh("c")
        pool:send { cmd = "connect", name = name, url = emu.base .. "/client/?hub=" .. hub,
                    accessToken = client_token(emu, hub, "u"), targets = { "newMessage" } }
        wait(function() local c = hs:client(1) return c and c.handshake end, 10, "the handshake request")
        local c = hs:client(1)
        -- the handshake answer in three pieces, the last without IsPartial
        hs:data(c.id, "{", true)
        hs:data(c.id, "}", true)
        hs:data(c.id, RS)
        -- a message in two
        local inv = invocation(c, "newMessage", { "in", "pieces" })
        hs:data(c.id, inv:sub(1, 10), true)
        hs:data(c.id, inv:sub(11))
        local ev = wait(function() return event(pool, name, { connected = true, failed = true }) end, 10)
        assert.equal("connected", ev.ev, ev.error)
        wait(function() return #messages(pool, name) >= 1 end, 10, "the message in pieces")
        assert.same({ "in", "pieces" }, messages(pool, name)[1])
        hs:close()
    end)

    it("holds the service's own messages until the hub server has answered the handshake", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub, { auto = false })
        local name = fresh("c")
        pool:send { cmd = "connect", name = name, url = emu.base .. "/client/?hub=" .. hub,
                    accessToken = client_token(emu, hub, "u"), targets = { "newMessage" } }
        wait(function() local c = hs:client(1) return c and c.handshake end, 10, "the handshake request")
        local c = hs:client(1)
        assert.equal(202, (rest_send(emu, hub .. "/:send", '{"target":"newMessage","arguments":["early"]}')))
        hs:pump(0.2)
        hs:data(c.id, "{}" .. RS)
        local ev = wait(function() return event(pool, name, { connected = true, failed = true }) end, 10)
        assert.equal("connected", ev.ev, ev.error)
        wait(function() return #messages(pool, name) >= 1 end, 10, "the early broadcast")
        assert.same({ "early" }, messages(pool, name)[1])
        hs:close()
    end)

    it("group joins from the hub server's own connection, then group sends", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"))
        local b = connect(pool, emu, hub, fresh("c"))
        -- JoinGroupWithAck [18, connection, group, ack id, {}]
        hs:send_body("\149\18" .. mp.pack(a.connectionId) .. mp.pack("room") .. "\7\128")
        wait(function() return hs.acks[7] end, 5, "the join's ack")
        assert.equal(1, hs.acks[7])
        -- GroupBroadcastData from the hub server: [13, group, excluded, payloads, {}]
        local payload = cjson.encode { type = 1, target = "newMessage", arguments = { "to room" } } .. RS
        hs:send_body("\149\13" .. mp.pack("room") .. "\144\129" .. mp.pack("json") .. bin(payload) .. "\128")
        -- and REST
        assert.equal(202, (rest_send(emu, hub .. "/groups/room/:send",
            '{"target":"newMessage","arguments":["rest room"]}')))
        wait(function() return #messages(pool, a.name) >= 2 end, 10, "the group sends")
        assert.same({ { "to room" }, { "rest room" } }, messages(pool, a.name))
        assert.same({}, messages(pool, b.name))
        -- LeaveGroupWithAck
        hs:send_body("\149\19" .. mp.pack(a.connectionId) .. mp.pack("room") .. "\8\128")
        wait(function() return hs.acks[8] end, 5, "the leave's ack")
        assert.equal(1, hs.acks[8])
        hs:close()
    end)

    it("REST :invoke reaches a routed client; its Completion answers the REST call", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"), { results = { askMe = "forty-two" } })
        assert.equal("connected", a.ev)
        local p = "/api/hubs/" .. hub .. "/connections/" .. a.connectionId .. "/:invoke"
        local tok = core.jwt_sign(cjson.encode { aud = "http://localhost" .. p, exp = os.time() + 60 }, env.KEY)
        -- curl blocks this process: run it in the background, pumping meanwhile
        local out = emu.dir .. "/invoke.out"
        os.execute(env.CLEAN .. "curl -s -m 10 -X POST -H 'Authorization: Bearer " .. tok
            .. "' -H 'Content-Type: application/json' --data '{\"target\":\"askMe\",\"arguments\":[]}' '"
            .. emu.base .. p .. "?api-version=2024-12-01' > " .. out .. " 2>/dev/null &")
        local body = wait(function()
            local s = env.read(out)
            return s and s ~= "" and s
        end, 12, "the :invoke answer")
        assert.same({ result = "forty-two" }, cjson.decode(body))
        -- the Completion was the service's: the hub server never saw it
        for _, m in ipairs(hs:client(1).got) do assert.not_equal(3, m.type) end
        hs:close()
    end)

    it("a malformed message closes the hub server's connection and its clients", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"))
        assert.equal("connected", a.ev)
        -- ConnectionData whose payload is a number
        hs:send_body("\148\6" .. mp.pack(a.connectionId) .. "\5\128")
        closed(pool, a.name)
        wait(function() hs:pump(0.05) return hs.gone end, 5, "the server connection to close")
    end)

    it("a client's stream is carried verbatim, with no pings of the emulator's own", function()
        local hub = fresh("hub")
        local hs = hub_server(emu, hub)
        local a = connect(pool, emu, hub, fresh("c"))
        local c = hs:client(a.connectionId)
        pool:send { cmd = "invoke", name = a.name, target = "note", args = { "é ü", { x = true } } }
        local note = wait(function()
            for _, m in ipairs(c.got) do if m.type == 1 then return m end end
        end, 10, "the note")
        assert.same({ type = 1, target = "note", arguments = { "é ü", { x = true } } }, note)
        hs:close()
    end)
end)

-- ===== Classic and Serverless =====

describe("emulator --service-mode classic", function()
    local emu, pool
    setup(function()
        emu = env.emulator("--service-mode classic")
        pool = env.clients(emu)
    end)
    teardown(function()
        for h in pairs(live) do h:close() end
        pool:quit()
        emu:stop()
    end)

    it("routes a client when a hub server is connected as it comes", function()
        local hs = hub_server(emu, "classic1")
        local a = connect(pool, emu, "classic1", "k1")
        assert.equal("connected", a.ev, a.error)
        assert.equal(42, call(pool, "k1", "q", "echo", { 42 }).result)
        assert.truthy(hs:client(a.connectionId))
        hs:close()
        closed(pool, "k1")
    end)

    it("without one, the client is serverless for life: a call closes it, 'No server available'", function()
        local a = connect(pool, emu, "classic2", "k2")
        assert.equal("connected", a.ev, a.error)
        -- a hub server that comes later does not get it
        local hs = hub_server(emu, "classic2")
        assert.equal(202, (rest_send(emu, "classic2/:send", '{"target":"newMessage","arguments":["still here"]}')))
        wait(function() return #messages(pool, "k2") >= 1 end, 10, "the REST send")
        pool:send { cmd = "invoke", name = "k2", target = "echo", args = { 1 } }
        local e = closed(pool, "k2")
        assert.truthy(e.error and e.error:find("No server available", 1, true), tostring(e.error))
        hs:pump(0.2)
        assert.is_nil(hs:client(1))
        hs:close()
    end)
end)

describe("emulator --service-mode serverless (the default)", function()
    local emu, pool
    setup(function()
        emu = env.emulator()
        pool = env.clients(emu)
    end)
    teardown(function()
        for h in pairs(live) do h:close() end
        pool:quit()
        emu:stop()
    end)

    it("answers the handshake itself; a type-0 server connection carries no clients", function()
        local hs = hub_server(emu, "plain")
        local a = connect(pool, emu, "plain", "s1")
        assert.equal("connected", a.ev, a.error)
        assert.equal(202, (rest_send(emu, "plain/:send", '{"target":"newMessage","arguments":["hi"]}')))
        wait(function() return #messages(pool, "s1") >= 1 end, 10, "the REST send")
        hs:pump(0.2)
        assert.is_nil(hs:client(1))
        assert.is_nil(hs.types[4])
        local st = emu:stats()
        assert.equal("serverless", st.service_mode)
        assert.equal(0, st.open_connection_sent)
        -- listen-only, as before
        pool:send { cmd = "invoke", name = "s1", target = "echo", args = { 1 } }
        local e = closed(pool, "s1")
        assert.truthy(e.error and e.error:find("listen-only", 1, true), tostring(e.error))
        hs:close()
    end)

    it("refuses an unknown --service-mode", function()
        local p = io.popen(env.CLEAN .. env.root .. "/bin/signalr-emulator --service-mode proxy 2>&1; echo \"rc=$?\"")
        local out = p:read("*a")
        p:close()
        assert.truthy(out:find("rc=2", 1, true), out)
        assert.truthy(out:find("serverless, default or classic", 1, true), out)
    end)
end)

describe("emulator --max-client-buffer", function()
    local emu
    setup(function() emu = env.emulator("--service-mode default --max-client-buffer 65536") end)
    teardown(function()
        for h in pairs(live) do h:close() end
        emu:stop()
    end)

    it("a routed client that reads nothing is closed; its hub server is told why", function()
        local hs = hub_server(emu, "stuck")
        -- a raw client: negotiate, the WebSocket, the handshake, then no reads
        local tok = client_token(emu, "stuck", "slow")
        local status, body = emu:http("POST", "/client/negotiate?hub=stuck&negotiateVersion=1", "",
            { Authorization = "Bearer " .. tok })
        assert.equal(200, status, body)
        local ctoken = cjson.decode(body).connectionToken
        local ws = websocket.new_from_uri(string.format("ws://127.0.0.1:%d/client/?hub=stuck&id=%s&access_token=%s",
            emu.port, ctoken, tok))
        assert(ws:connect(5))
        assert(ws:send('{"protocol":"json","version":1}' .. RS, "text"))
        local c = wait(function() local x = hs:client(1) return x and x.handshake and x end, 10, "the client")
        -- the hub server sends it 64 KB messages until the emulator gives up
        -- on it (the kernel's socket buffers take a few MB first)
        local big = cjson.encode { type = 1, target = "newMessage", arguments = { string.rep("x", 65536) } } .. RS
        local sent = 0
        while not c.closed and sent < 4000 do
            hs:data(c.id, big)
            sent = sent + 1
            hs:pump(0.001)
        end
        wait(function() return c.closed end, 10, "CloseConnection")
        assert.equal("the client does not read its messages", c.closed.error)
        assert.is_true(sent < 4000, "never closed")
        -- it is gone for the service too
        assert.equal(0, emu:stats().routed_clients)
        hs:close()
    end)
end)
