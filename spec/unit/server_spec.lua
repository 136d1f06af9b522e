-- signalr.server without a service: the server's handlers fed with the
-- service's messages (OpenConnection, ConnectionData, CloseConnection) as
-- the pool would hand them over, and every frame it writes read back with
-- the core's readers.  Covers the hub protocol's rules (ASP.NET Core's
-- texts), the per-client order, and bad input from the wire.
local signalr = require "signalr"
local core = require "signalr.core"
local dispatch = require "signalr.server.dispatch"
local sched_mod = require "signalr.server.sched"

local SP, HUB = core.sp, core.hub
local CS = "Endpoint=http://127.0.0.1;Port=1;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
local RS = "\30"
-- Lua 5.1 tells no handler's parameter count (debug.getinfo has no
-- nparams): there, handlers get what the client sent, unchecked
local ARITY = debug.getinfo(function(_) end, "u").nparams ~= nil
-- 5.1 and LuaJIT numbers are doubles: integers are exact to 2^53
local INT64 = math.type ~= nil

-- A server whose pool is a stand-in: writes are recorded per connection.
local function server(opts)
    opts = opts or {}
    opts.connection_string = CS
    opts.hub = opts.hub or "chat"
    local s = assert(signalr.server(opts))
    local wrote = {}
    s.pool = {
        write = function(_, c, frame)
            wrote[#wrote + 1] = { conn = c, frame = frame }
            return true
        end,
        ack_on = function(_, c, _, make_frame, what, check, wake)
            local frame = make_frame(7)
            wrote[#wrote + 1] = { conn = c, frame = frame }
            local a = { id = 7, what = what, check = check, wake = wake }
            s.pending_ack = a
            return a
        end,
        forget = function() end,
    }
    s.started = true -- no connections: the stand-in pool has none
    s.logged = {}
    s.on_log = function(level, msg) s.logged[#s.logged + 1] = level .. ": " .. msg end
    -- what the server wrote, as { id, payload | close = reason }
    function s.out()
        local out = {}
        for _, w in ipairs(wrote) do
            local list = assert(core.sp_read(w.frame))
            for _, m in ipairs(list) do
                if m.type == SP.CONNECTION_DATA then
                    out[#out + 1] = { id = m.connection_id, payload = m.payload, data_type = m.data_type }
                elseif m.type == SP.CLOSE_CONNECTION then
                    out[#out + 1] = { id = m.connection_id, close = m.error }
                else
                    out[#out + 1] = { id = m.connection_id, type = m.type, group = m.group }
                end
            end
        end
        for i = #wrote, 1, -1 do wrote[i] = nil end
        return out
    end
    return s
end

-- the connection: backlog is what it holds unwritten (set by a test)
local conn = { name = "c1", backlog = 0 }
function conn.unwritten(c) return c.backlog end

local function open(s, id, protocol, claims)
    s:_message(conn, { type = SP.OPEN_CONNECTION, connection_id = id, protocol = protocol or "json",
                       claims = claims or { { type = "asrs.s.uid", value = "alice" } }, headers = {},
                       query = "?hub=chat" })
end
local function data(s, id, bytes, partial)
    s:_message(conn, { type = SP.CONNECTION_DATA, connection_id = id, payload = bytes, partial = partial })
end
local function handshake(s, id, protocol)
    data(s, id, '{"protocol":"' .. (protocol or "json") .. '","version":1}' .. RS)
end
local function invoke(s, id, inv, target, args)
    local frame = '{"type":1,' .. (inv and ('"invocationId":"' .. inv .. '",') or "")
        .. '"target":"' .. target .. '","arguments":' .. (args or "[]") .. "}" .. RS
    data(s, id, frame)
end
-- the JSON hub messages the server sent to client id, decoded
local function sent(s, id)
    local msgs = {}
    for _, o in ipairs(s.out()) do
        if o.id == id and o.payload then
            for rec in o.payload:gmatch("([^" .. RS .. "]*)" .. RS) do
                msgs[#msgs + 1] = assert(core.json_decode(rec))
            end
        elseif o.id == id then
            msgs[#msgs + 1] = o
        end
    end
    return msgs
end

describe("signalr.server", function()
    describe("options", function()
        it("raise on a wrong type, an unknown key, a missing hub", function()
            assert.has_error(function() signalr.server("x") end)
            assert.has_error(function() signalr.server { connection_string = CS } end,
                "signalr.server: option 'hub' (or 'hubs') is required")
            assert.has_error(function() signalr.server { connection_string = CS, hub = "h", hubz = 1 } end,
                "signalr.server: unknown option 'hubz'")
            assert.has_error(function() signalr.server { connection_string = CS, hub = "h", detailed_errors = 1 } end,
                "signalr.server: option 'detailed_errors' must be a boolean, got number")
            assert.has_error(function() signalr.server { connection_string = CS, endpoints = { CS }, hub = "h" } end,
                "signalr.server: give either 'connection_string' or 'endpoints', not both")
            assert.has_error(function() signalr.server { hub = "h" } end,
                "signalr.server: option 'connection_string' (or 'endpoints') is required")
            assert.has_error(function() signalr.server { endpoints = { 5 }, hub = "h" } end,
                "signalr.server: endpoints[1] must be a table or a connection string, got number")
            local s = assert(signalr.server { endpoints = { CS, { connection_string = CS:gsub("Port=1", "Port=2"),
                name = "b" } }, hub = "h" })
            assert.equal(2, #s.pools)
            s:close()
        end)
        it("a bad connection string or hub name is nil, message, details", function()
            local s, msg, d = signalr.server { connection_string = "Endpoint=x", hub = "h" }
            assert.is_nil(s)
            assert.equal("ECONNSTR", d.code)
            assert.matches("^signalr.server: ", msg)
            s, msg, d = signalr.server { connection_string = CS, hub = "bad-hub" }
            assert.is_nil(s)
            assert.equal("EINVAL", d.code, msg)
        end)
        it("on() raises for a non-function or a name registered twice (without regard to case)", function()
            local s = server()
            s:on("Move", function() end)
            assert.has_error(function() s:on("Jump", 5) end,
                "signalr.server:on: the handler for 'Jump' must be a function, got number")
            assert.has_error(function() s:on("move", function() end) end,
                "signalr.server:on: 'move' is registered already (as 'Move'; names match without regard to case)")
        end)
    end)

    describe("a client's life", function()
        it("handshake, on_connected before any invocation, results, on_disconnected once", function()
            local s = server()
            local order = {}
            s:on_connected(function(ctx)
                order[#order + 1] = "connected " .. ctx.user_id
                ctx.items.n = 0
                assert(ctx:send("welcome", 1, nil, "x"))
            end)
            s:on_disconnected(function(_, err) order[#order + 1] = "gone " .. tostring(err) end)
            s:on("Add", function(ctx, a, b)
                ctx.items.n = ctx.items.n + 1
                return a + b
            end)
            open(s, "c-1")
            handshake(s, "c-1")
            invoke(s, "c-1", "1", "Add", "[2,3]")
            local out = sent(s, "c-1")
            assert.same({}, out[1]) -- the handshake answer {} comes first
            assert.same({ type = 1, target = "welcome", arguments = { 1, core.json_null, "x" } }, out[2])
            assert.same({ type = 3, invocationId = "1", result = 5 }, out[3])
            -- the client leaves: on_disconnected once, nothing sent back
            s:_message(conn, { type = SP.CLOSE_CONNECTION, connection_id = "c-1", error = "" })
            s:_message(conn, { type = SP.CLOSE_CONNECTION, connection_id = "c-1", error = "" })
            assert.same({ "connected alice", "gone nil" }, order)
            assert.same({}, sent(s, "c-1"))
        end)

        it("MessagePack clients get MessagePack completions; numbers exact", function()
            local s = server()
            s:on("Echo", function(_, v) return v end)
            open(s, "m-1", "messagepack")
            handshake(s, "m-1", "messagepack")
            local out = s.out()
            assert.equal("{}" .. RS, out[1].payload)
            -- [1, {}, "5", "Echo", [2^53 + 1]] with its varint length (2^53 - 1
            -- where numbers are doubles)
            local body = INT64 and "\149\1\128\161\53\164Echo\145\207\0\32\0\0\0\0\0\1"
                or "\149\1\128\161\53\164Echo\145\207\0\31\255\255\255\255\255\255"
            data(s, "m-1", string.char(#body) .. body)
            out = s.out()
            local reader = core.hub_reader()
            reader:set_protocol(HUB.MESSAGEPACK)
            local msgs = assert(reader:feed(out[1].payload))
            assert.equal(3, msgs[1].type)
            assert.equal("5", msgs[1].invocation_id)
            assert.equal(INT64 and "9007199254740993" or "9007199254740991", msgs[1].result)
        end)

        it("MessagePack arguments JSON cannot carry fail that call only; the client stays", function()
            local s = server()
            local ran = 0
            s:on("Up", function(_, items) for _ in items do end ran = ran + 1 return "up" end)
            s:on("Add", function(_, a, b) ran = ran + 1 return a + b end)
            open(s, "m-2", "messagepack")
            handshake(s, "m-2", "messagepack")
            s.out()
            local NAN = "\203\127\248\0\0\0\0\0\0"
            local function send(body) data(s, "m-2", string.char(#body) .. body) end
            -- a StreamInvocation [4, {}, "7", "Up", [NaN], ["s1"]], then an item for s1
            send("\150\4\128\161\55\162Up\145" .. NAN .. "\145\162s1")
            send("\148\2\128\162s1\1")
            -- an Invocation without an id [1, {}, nil, "Add", [NaN, 1]]: no answer
            send("\149\1\128\192\163Add\146" .. NAN .. "\1")
            -- then a good call on the same connection
            send("\149\1\128\161\56\163Add\146\1\2")
            local reader = core.hub_reader()
            reader:set_protocol(HUB.MESSAGEPACK)
            local got = {}
            for _, o in ipairs(s.out()) do
                assert.is_nil(o.close)
                for _, m in ipairs(assert(reader:feed(o.payload))) do got[#got + 1] = m end
            end
            assert.equal(2, #got)
            assert.equal("7", got[1].invocation_id)
            assert.equal("Failed to invoke 'Up' due to an error on the server.", got[1].error)
            assert.equal("8", got[2].invocation_id)
            assert.equal("3", got[2].result)
            assert.equal(1, ran)
            local logged = table.concat(s.logged, "\n")
            assert.truthy(logged:find("invocation of 'Add': NaN and infinities have no JSON form", 1, true), logged)
        end)

        it("ASP.NET Core's texts: unknown method, argument count, hub errors, the generic error", function()
            local s = server()
            s:on("Move", function(_, dx, dy)
                if dx > 1 then error(signalr.hub_error "bad move") end
                return dx + dy
            end)
            s:on("Boom", function() error("secret detail") end)
            open(s, "e-1")
            handshake(s, "e-1")
            sent(s, "e-1")
            invoke(s, "e-1", "1", "Nope", "[1]")
            invoke(s, "e-1", "2", "move", "[1]")
            invoke(s, "e-1", "3", "MOVE", "[5,0]")
            invoke(s, "e-1", "4", "Boom")
            invoke(s, "e-1", "5", "Move", '["a","b"]')
            invoke(s, "e-1", nil, "Nope")
            local out = sent(s, "e-1")
            assert.equal(5, #out) -- no answer to the last (a send)
            assert.equal("Unknown hub method 'Nope'", out[1].error)
            if ARITY then
                assert.equal("Failed to invoke 'move' due to an error on the server.", out[2].error)
            else -- dy is nil: the handler's own error
                assert.equal("An unexpected error occurred invoking 'move' on the server.", out[2].error)
            end
            assert.equal("An unexpected error occurred invoking 'MOVE' on the server. HubException: bad move",
                out[3].error)
            assert.equal("An unexpected error occurred invoking 'Boom' on the server.", out[4].error)
            assert.equal("An unexpected error occurred invoking 'Move' on the server.", out[5].error)
            -- the generic error's detail is logged, never sent
            local log = table.concat(s.logged, "\n")
            assert.truthy(log:find("secret detail", 1, true), log)
        end)

        it("detailed_errors sends the handler's message and the argument counts", function()
            local s = server { detailed_errors = true }
            s:on("Boom", function() error("the detail", 0) end)
            s:on("Two", function(_, a, b) return a, b end)
            open(s, "d-1")
            handshake(s, "d-1")
            sent(s, "d-1")
            invoke(s, "d-1", "1", "Boom")
            invoke(s, "d-1", "2", "Two", "[1]")
            local out = sent(s, "d-1")
            assert.equal("An unexpected error occurred invoking 'Boom' on the server. LuaError: the detail",
                out[1].error)
            if ARITY then
                assert.equal("Failed to invoke 'Two' due to an error on the server. InvalidDataException:"
                    .. " Invocation provides 1 argument(s) but target expects 2.", out[2].error)
            else -- unchecked: the handler ran and returned its first value
                assert.equal(1, out[2].result)
            end
        end)

        it("a streaming invocation of a plain method gets ASP.NET Core's text", function()
            local s = server()
            s:on("Add", function(_, a, b) return a + b end)
            open(s, "s-1")
            handshake(s, "s-1")
            sent(s, "s-1")
            data(s, "s-1", '{"type":4,"invocationId":"9","target":"Add","arguments":[1,2]}' .. RS)
            assert.equal("The client attempted to invoke the non-streaming 'Add' method with a streaming"
                .. " invocation.", sent(s, "s-1")[1].error)
        end)

        it("invocations of one client run one at a time, in order; other clients go on meanwhile", function()
            local s = server()
            local release = false
            s:on("Wait", function(ctx) ctx:await(function() return release end, 5) return "waited" end)
            s:on("Add", function(_, a, b) return a + b end)
            open(s, "o-1")
            handshake(s, "o-1")
            open(s, "o-2")
            handshake(s, "o-2")
            s.out()
            invoke(s, "o-1", "1", "Wait")
            invoke(s, "o-1", "2", "Add", "[1,1]")
            invoke(s, "o-2", "3", "Add", "[2,2]")
            local out = s.out()
            assert.equal(1, #out) -- only o-2's answer: o-1's Add waits behind its Wait
            assert.equal("o-2", out[1].id)
            release = true
            s.sched:step()
            local got = sent(s, "o-1")
            assert.equal("waited", got[1].result)
            assert.equal(2, got[2].result)
        end)

        it("fragments (IsPartial) are joined; several messages in one ConnectionData all run", function()
            local s = server()
            s:on("Add", function(_, a, b) return a + b end)
            open(s, "p-1")
            handshake(s, "p-1")
            sent(s, "p-1")
            data(s, "p-1", '{"type":1,"invocationId":"1","tar', true)
            data(s, "p-1", 'get":"Add","arguments":[1,', true)
            data(s, "p-1", '2]}' .. RS .. '{"type":6}' .. RS
                .. '{"type":1,"invocationId":"2","target":"Add","arguments":[3,4]}' .. RS)
            local out = sent(s, "p-1")
            assert.equal(3, out[1].result)
            assert.equal(7, out[2].result)
        end)

        it("a client's Close ends it: CloseConnection to the service, on_disconnected with its error", function()
            local s = server()
            local gone = {}
            s:on_disconnected(function(ctx, err) gone[#gone + 1] = { ctx.connection_id, err } end)
            open(s, "x-1")
            handshake(s, "x-1")
            s.out()
            data(s, "x-1", '{"type":7,"error":"bye"}' .. RS)
            local out = s.out()
            assert.equal("x-1", out[1].id)
            assert.equal("", out[1].close)
            assert.same({ { "x-1", "bye" } }, gone)
        end)

        it("ctx:close sends Close, then CloseConnection; on_disconnected runs once", function()
            local s = server()
            local n = 0
            s:on_disconnected(function() n = n + 1 end)
            s:on("Quit", function(ctx) ctx:close("game over") ctx:close() end)
            open(s, "q-1")
            handshake(s, "q-1")
            s.out()
            invoke(s, "q-1", "1", "Quit")
            local out = s.out()
            assert.equal('{"type":7,"error":"game over"}' .. RS, out[1].payload)
            assert.equal("game over", out[2].close)
            assert.equal(1, n)
            assert.equal(nil, ({ s.sessions["q-1"] })[1])
        end)

        it("a lost server connection ends its clients (on_disconnected once each), others stay", function()
            local s = server()
            local gone = {}
            s:on_disconnected(function(ctx, err) gone[#gone + 1] = ctx.connection_id .. ": " .. err end)
            open(s, "l-1")
            handshake(s, "l-1")
            local other = { name = "c2", unwritten = conn.unwritten, backlog = 0 }
            s:_message(other, { type = SP.OPEN_CONNECTION, connection_id = "l-2", protocol = "json",
                                claims = {}, headers = {} })
            s:_message(other, { type = SP.CONNECTION_DATA, connection_id = "l-2",
                                payload = '{"protocol":"json","version":1}' .. RS })
            s:_lost(conn, "reset")
            s:_lost(conn, "reset")
            assert.same({ "l-1: the server connection was lost: reset" }, gone)
            assert.truthy(s.sessions["l-2"])
            assert.is_nil(s.sessions["l-1"])
        end)

        it("ctx:join waits in the handler for the service's answer", function()
            local s = server()
            local got
            s:on("Join", function(ctx, g) got = { ctx:join(g) } return got[1] end)
            open(s, "j-1")
            handshake(s, "j-1")
            s.out()
            invoke(s, "j-1", "1", "Join", '["red"]')
            local out = s.out()
            assert.equal(SP.JOIN_GROUP_WITH_ACK, out[1].type)
            assert.is_nil(got) -- still waiting
            local a = s.pending_ack
            a.done, a.result = true, true
            a.wake()
            assert.same({ true }, got)
            assert.is_true(sent(s, "j-1")[1].result)
        end)
    end)

    describe("streams and client results", function()
        it("a stream to the client: items, then a Completion; a cancel stops it and calls on_cancel once", function()
            local s = server()
            local cancels = 0
            s:on("Count", function(_, n)
                local i = 0
                return signalr.stream(function()
                    i = i + 1
                    if i <= n then return { i = i } end
                end)
            end)
            s:on("Forever", function()
                return signalr.stream(function() return 1 end, { on_cancel = function() cancels = cancels + 1 end })
            end)
            open(s, "st-1")
            handshake(s, "st-1")
            sent(s, "st-1")
            data(s, "st-1", '{"type":4,"invocationId":"1","target":"Count","arguments":[3]}' .. RS)
            for _ = 1, 5 do s.sched:step() end
            local out = sent(s, "st-1")
            assert.same({ type = 2, invocationId = "1", item = { i = 1 } }, out[1])
            assert.same({ i = 3 }, out[3].item)
            assert.same({ type = 3, invocationId = "1" }, out[4])
            -- an endless stream, cancelled by the client
            data(s, "st-1", '{"type":4,"invocationId":"2","target":"Forever","arguments":[]}' .. RS)
            s.sched:step()
            data(s, "st-1", '{"type":5,"invocationId":"2"}' .. RS)
            for _ = 1, 5 do s.sched:step() end
            out = sent(s, "st-1")
            assert.truthy(#out >= 2)
            assert.same({ type = 3, invocationId = "2" }, out[#out])
            assert.equal(1, cancels)
            -- invoke of a streaming method, stream of a plain one: ASP.NET Core's texts
            s:on("Plain", function() return 1 end)
            data(s, "st-1", '{"type":1,"invocationId":"3","target":"Count","arguments":[1]}' .. RS)
            data(s, "st-1", '{"type":4,"invocationId":"4","target":"Plain","arguments":[]}' .. RS)
            out = sent(s, "st-1")
            assert.equal("The client attempted to invoke the streaming 'Count' method with a non-streaming"
                .. " invocation.", out[1].error)
            assert.equal("The client attempted to invoke the non-streaming 'Plain' method with a streaming"
                .. " invocation.", out[2].error)
        end)

        it("a stream that fails ends with ASP.NET Core's streaming error", function()
            local s = server()
            s:on("Bad", function()
                local i = 0
                return signalr.stream(function()
                    i = i + 1
                    if i > 1 then error(signalr.hub_error "no more") end
                    return i
                end)
            end)
            open(s, "sf-1")
            handshake(s, "sf-1")
            sent(s, "sf-1")
            data(s, "sf-1", '{"type":4,"invocationId":"1","target":"Bad","arguments":[]}' .. RS)
            for _ = 1, 3 do s.sched:step() end
            local out = sent(s, "sf-1")
            assert.equal(1, out[1].item)
            assert.equal("An error occurred on the server while streaming results. HubException: no more",
                out[2].error)
        end)

        it("a stream from the client: the handler iterates its items until the Completion", function()
            local s = server()
            local got
            s:on("Upload", function(_, label, items)
                local all = {}
                if _VERSION == "Lua 5.1" and type(jit) ~= "table" then
                    -- Lua 5.1 cannot yield inside a for-in iterator: call it
                    while true do
                        local v = items()
                        if v == nil then break end
                        all[#all + 1] = v
                    end
                else
                    for v in items do all[#all + 1] = v end
                end
                got = { label, all }
                return #all
            end)
            open(s, "up-1")
            handshake(s, "up-1")
            sent(s, "up-1")
            data(s, "up-1", '{"type":1,"invocationId":"1","target":"Upload","arguments":["x"],"streamIds":["7"]}'
                .. RS .. '{"type":2,"invocationId":"7","item":1}' .. RS)
            s.sched:step()
            data(s, "up-1", '{"type":2,"invocationId":"7","item":{"a":2}}' .. RS
                .. '{"type":2,"invocationId":"99","item":5}' .. RS -- an unknown stream: ignored
                .. '{"type":3,"invocationId":"7"}' .. RS)
            for _ = 1, 3 do s.sched:step() end
            assert.same({ "x", { 1, { a = 2 } } }, got)
            assert.equal(2, sent(s, "up-1")[1].result)
        end)

        it("ctx:invoke waits for the client's answer: a value, its error, its leaving, a timeout", function()
            local s = server { client_result_timeout = 0.2 }
            local got = {}
            s:on("Ask", function(ctx, what) got[#got + 1] = { ctx:invoke(what, 1) } return true end)
            open(s, "cr-1")
            handshake(s, "cr-1")
            sent(s, "cr-1")
            invoke(s, "cr-1", "1", "Ask", '["GetInput"]')
            local out = sent(s, "cr-1")
            assert.same({ type = 1, invocationId = "r1", target = "GetInput", arguments = { 1 } }, out[1])
            -- a completion for an invocation never made, and one from
            -- another client, change nothing
            data(s, "cr-1", '{"type":3,"invocationId":"r9","result":1}' .. RS)
            open(s, "cr-2")
            handshake(s, "cr-2")
            data(s, "cr-2", '{"type":3,"invocationId":"r1","result":666}' .. RS)
            assert.equal(0, #got)
            data(s, "cr-1", '{"type":3,"invocationId":"r1","result":42}' .. RS)
            assert.same({ { 42 } }, got)
            -- the client's error
            invoke(s, "cr-1", "2", "Ask", '["GetInput"]')
            data(s, "cr-1", '{"type":3,"invocationId":"r2","error":"no input"}' .. RS)
            assert.equal("ECLIENT", got[2][3].code)
            assert.equal("signalr.ctx:invoke: the client answered with an error: no input", got[2][2])
            -- a timeout
            invoke(s, "cr-1", "3", "Ask", '["GetInput"]')
            local t0 = core.monotonic()
            while #got < 3 and core.monotonic() - t0 < 2 do s.sched:step() end
            assert.equal("ETIMEDOUT", got[3][3].code)
            -- the client leaves while asked
            invoke(s, "cr-1", "4", "Ask", '["GetInput"]')
            s:_message(conn, { type = SP.CLOSE_CONNECTION, connection_id = "cr-1", error = "" })
            assert.equal("ECLOSED", got[4][3].code)
        end)

        it("ctx:invoke outside a coroutine raises clearly", function()
            local s = server()
            local ctx
            s:on_connected(function(c) ctx = c end)
            open(s, "cr-3")
            handshake(s, "cr-3")
            assert.has_error(function() ctx:invoke("GetInput") end)
            local ok, err = pcall(ctx.invoke, ctx, "GetInput")
            assert.is_false(ok)
            assert.matches("call it from a handler, or from a coroutine of your own", err)
        end)

        it("a stream id reused while its stream is open is refused", function()
            local s = server()
            s:on("Upload", function(_, items) return items and 1 end) -- leaves its stream open
            open(s, "ru-1")
            handshake(s, "ru-1")
            sent(s, "ru-1")
            data(s, "ru-1", '{"type":1,"invocationId":"1","target":"Upload","arguments":[],"streamIds":["5"]}' .. RS)
            data(s, "ru-1", '{"type":1,"invocationId":"2","target":"Upload","arguments":[],"streamIds":["5"]}' .. RS)
            local out = sent(s, "ru-1")
            assert.equal(1, out[1].result)
            assert.equal("Invocation ID '5' is already in use.", out[2].error)
            -- once the client ends it, the id is free again
            data(s, "ru-1", '{"type":3,"invocationId":"5"}' .. RS)
            data(s, "ru-1", '{"type":1,"invocationId":"3","target":"Upload","arguments":[],"streamIds":["5"]}' .. RS)
            assert.equal(1, sent(s, "ru-1")[1].result)
        end)
    end)

    describe("limits", function()
        it("max_parallel_invocations lets a client's invocations run side by side", function()
            local s = server { max_parallel_invocations = 2 }
            local release = false
            s:on("Wait", function(ctx) ctx:await(function() return release end, 5) return "waited" end)
            s:on("Add", function(_, a, b) return a + b end)
            open(s, "p-1")
            handshake(s, "p-1")
            s.out()
            invoke(s, "p-1", "1", "Wait")
            invoke(s, "p-1", "2", "Wait")
            invoke(s, "p-1", "3", "Add", "[1,1]")
            -- two run (both wait), the third waits behind them
            assert.same({}, sent(s, "p-1"))
            release = true
            s.sched:step()
            local got = sent(s, "p-1")
            assert.equal(3, #got)
            -- the first Wait to end lets the Add run before the other ends
            -- (which Wait resumes first is the scheduler's choice)
            local by = {}
            for _, m in ipairs(got) do by[m.invocationId] = m.result end
            assert.same({ ["1"] = "waited", ["2"] = "waited", ["3"] = 2 }, by)
            assert.equal("3", got[2].invocationId)
        end)

        it("a backed-up connection: a client's frames wait in its queue, then go in order", function()
            local s = server()
            s:on("Add", function(_, a, b) return a + b end)
            open(s, "q-1")
            handshake(s, "q-1")
            s.out()
            conn.backlog = 2 * 1024 * 1024
            invoke(s, "q-1", "1", "Add", "[1,1]")
            invoke(s, "q-1", "2", "Add", "[2,2]")
            assert.same({}, s.out())
            s:_drain()
            assert.same({}, s.out()) -- still no room
            conn.backlog = 0
            s:_drain()
            local got = sent(s, "q-1")
            assert.same({ 2, 4 }, { got[1].result, got[2].result })
            assert.is_nil(next(s.queued))
        end)

        it("a queue drained in part, then added to, keeps every frame in order", function()
            local s = server()
            s:on("Add", function(_, a, b) return a + b end)
            open(s, "qp-1")
            handshake(s, "qp-1")
            s.out()
            conn.backlog = 2 * 1024 * 1024
            for i = 1, 10 do invoke(s, "qp-1", tostring(i), "Add", "[" .. i .. ",0]") end
            -- the network takes 8 frames' worth, then is full again
            local room = 8
            local unwritten = conn.unwritten
            conn.unwritten = function(c)
                if room > 0 then room = room - 1 return 0 end
                return c.backlog
            end
            s:_drain()
            conn.unwritten = unwritten
            invoke(s, "qp-1", "11", "Add", "[11,0]")
            conn.backlog = 0
            s:_drain()
            local got = {}
            for _, m in ipairs(sent(s, "qp-1")) do got[#got + 1] = m.result end
            assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, got)
        end)

        it("a backed-up client closed by the hub gets what was queued for it, then the close", function()
            local s = server()
            s:on("Bye", function(ctx)
                assert(ctx:send("bye", 1))
                ctx:close("maintenance")
            end)
            open(s, "qc-1")
            handshake(s, "qc-1")
            s.out()
            conn.backlog = 2 * 1024 * 1024
            invoke(s, "qc-1", nil, "Bye")
            conn.backlog = 0
            local out = sent(s, "qc-1")
            assert.equal("bye", out[1].target)
            assert.same({ type = 7, error = "maintenance" }, out[2])
            assert.equal("maintenance", out[3].close)
        end)

        it("a client that cannot keep up is closed with the reason, once, its queue dropped", function()
            local s = server { client_max_queue_messages = 3 }
            local gone = {}
            s:on_disconnected(function(_, err) gone[#gone + 1] = err end)
            s:on("Spam", function(ctx)
                for i = 1, 10 do
                    local ok, msg, d = ctx:send("tick", i)
                    if not ok then return msg .. " " .. d.code end
                end
                return "all sent"
            end)
            open(s, "f-1")
            handshake(s, "f-1")
            s.out()
            conn.backlog = 2 * 1024 * 1024
            invoke(s, "f-1", "1", "Spam")
            conn.backlog = 0
            s:_drain()
            local out = s.out()
            -- nothing of the queue went out: only CloseConnection with the reason
            assert.equal(1, #out)
            assert.equal("f-1", out[1].id)
            assert.matches("cannot keep up: over 3 messages", out[1].close)
            assert.matches("client_max_queue_messages", out[1].close)
            s.sched:step()
            assert.equal(1, #gone)
            assert.matches("cannot keep up", gone[1])
            assert.is_nil(s.sessions["f-1"])
            -- the byte bound likewise
            s = server { client_max_queue_bytes = 1000 }
            s:on("Big", function(ctx)
                assert(ctx:send("blob", string.rep("x", 600)))
                local _, _, d = ctx:send("blob", string.rep("x", 600))
                return d and d.code
            end)
            open(s, "f-2")
            handshake(s, "f-2")
            s.out()
            conn.backlog = 2 * 1024 * 1024
            invoke(s, "f-2", "1", "Big")
            conn.backlog = 0
            out = s.out()
            assert.equal(1, #out)
            assert.matches("over 1000 bytes", out[1].close)
        end)

        it("options are checked", function()
            for _, k in ipairs { "max_parallel_invocations", "client_max_queue_bytes", "client_max_queue_messages" } do
                assert.has_error(function() signalr.server { connection_string = CS, hub = "h", [k] = 0 } end,
                    "signalr.server: option '" .. k .. "' must be a positive integer, got 0")
                assert.has_error(function() signalr.server { connection_string = CS, hub = "h", [k] = "1" } end,
                    "signalr.server: option '" .. k .. "' must be a number, got string")
            end
        end)
    end)

    describe("bad input from the wire", function()
        it("a refused handshake is answered with the reason, then CloseConnection", function()
            local s = server()
            open(s, "h-1")
            data(s, "h-1", '{"protocol":"xml","version":1}' .. RS)
            local out = s.out()
            assert.equal('{"error":"The protocol \'xml\' is not supported."}' .. RS, out[1].payload)
            assert.equal("h-1", out[2].id)
            assert.truthy(out[2].close)
            assert.is_nil(s.sessions["h-1"])
        end)

        it("malformed messages, oversized and too deep ones close that client only", function()
            local s = server()
            local gone = {}
            s:on_disconnected(function(ctx) gone[#gone + 1] = ctx.connection_id end)
            s:on("Add", function(_, a, b) return a + b end)
            local bad = {
                { "junk", "not json at all" .. RS },
                { "no type", '{"target":"Add"}' .. RS },
                { "10 MB", '{"type":1,"target":"Add","arguments":["' .. string.rep("x", 10 * 1024 * 1024)
                    .. '"]}' .. RS },
                { "deep", '{"type":1,"target":"Add","arguments":[' .. string.rep("[", 200)
                    .. string.rep("]", 200) .. "]}" .. RS },
                { "bad UTF-8", '{"type":1,"target":"Add\255","arguments":[]}' .. RS },
            }
            for i, b in ipairs(bad) do
                local id = "b-" .. i
                open(s, id)
                handshake(s, id)
                s.out()
                data(s, id, b[2])
                local out = s.out()
                assert.equal('{"type":7,"error":"Connection closed with an error."}' .. RS, out[1].payload, b[1])
                assert.truthy(out[2].close, b[1])
                assert.is_nil(s.sessions[id], b[1])
            end
            assert.equal(#bad, #gone)
            -- a well-behaved client is unaffected
            open(s, "ok")
            handshake(s, "ok")
            sent(s, "ok")
            invoke(s, "ok", "1", "Add", "[1,2]")
            assert.equal(3, sent(s, "ok")[1].result)
        end)

        it("unknown message types are passed over; data for unknown connections is ignored", function()
            local s = server()
            s:on("Add", function(_, a, b) return a + b end)
            open(s, "u-1")
            handshake(s, "u-1")
            sent(s, "u-1")
            data(s, "u-1", '{"type":99,"x":1}' .. RS .. '{"type":1,"invocationId":"1","target":"Add",'
                .. '"arguments":[1,1]}' .. RS)
            assert.equal(2, sent(s, "u-1")[1].result)
            data(s, "nobody", '{"type":1}' .. RS)
            s:_message(conn, { type = 123, connection_id = "u-1" })
            assert.same({}, s.out())
        end)

        it("a flood of invocations from one client closes that client, not the others", function()
            local s = server()
            s:on("Wait", function(ctx) ctx:await(function() return false end, 60) end)
            open(s, "f-1")
            handshake(s, "f-1")
            open(s, "f-2")
            handshake(s, "f-2")
            s.out()
            local parts = {}
            for i = 1, 1100 do
                parts[i] = '{"type":1,"invocationId":"' .. i .. '","target":"Wait","arguments":[]}' .. RS
            end
            data(s, "f-1", table.concat(parts))
            assert.is_nil(s.sessions["f-1"])
            assert.truthy(s.sessions["f-2"])
            s:close()
        end)
        it("a client streaming in faster than its handler reads is closed past the buffer", function()
            local s = server()
            local release = false
            s:on("Sink", function(ctx, items)
                ctx:await(function() return release end, 60)
                local n = 0
                while items() ~= nil do n = n + 1 end
                return n
            end)
            open(s, "sb-1")
            handshake(s, "sb-1")
            s.out()
            data(s, "sb-1", '{"type":1,"invocationId":"1","target":"Sink","arguments":[],"streamIds":["s"]}' .. RS)
            local parts = {}
            for i = 1, 1000 do parts[i] = '{"type":2,"invocationId":"s","item":' .. i .. '}' .. RS end
            data(s, "sb-1", table.concat(parts))
            assert.truthy(s.sessions["sb-1"]) -- 1,000 wait: still within the bound
            parts = {}
            for i = 1, 100 do parts[i] = '{"type":2,"invocationId":"s","item":' .. i .. '}' .. RS end
            data(s, "sb-1", table.concat(parts))
            assert.is_nil(s.sessions["sb-1"])
            local out = s.out()
            assert.matches("over 1024 stream items the hub has not read", out[#out].close)
            s:close()
        end)

        it("a long stream from the client keeps no item it has read", function()
            local s = server()
            local up
            s:on("Sink", function(_, items)
                -- (items() called, not for-in: Lua 5.1 cannot wait inside for-in)
                local n = 0
                while items() ~= nil do n = n + 1 end
                return n
            end)
            open(s, "sl-1")
            handshake(s, "sl-1")
            s.out()
            data(s, "sl-1", '{"type":1,"invocationId":"1","target":"Sink","arguments":[],"streamIds":["s"]}' .. RS)
            up = s.sessions["sl-1"].uploads.s
            for i = 1, 5000 do
                data(s, "sl-1", '{"type":2,"invocationId":"s","item":' .. i .. '}' .. RS)
                s.sched:step()
            end
            assert.is_nil(next(up.items)) -- every item taken is gone
            data(s, "sl-1", '{"type":3,"invocationId":"s"}' .. RS)
            s.sched:step()
            assert.equal(5000, sent(s, "sl-1")[1].result)
        end)

    end)

    describe("dispatch and sched", function()
        it("hub_error raises on a non-string; is_hub_error tells them apart", function()
            assert.has_error(function() dispatch.hub_error(5) end)
            assert.is_true(dispatch.is_hub_error(dispatch.hub_error("x")))
            assert.is_false(dispatch.is_hub_error("x"))
            assert.equal("HubException: x", tostring(dispatch.hub_error("x")))
        end)
        it("a wait outside the scheduler's coroutines raises a clear error", function()
            local sc = sched_mod.new(core.monotonic)
            assert.has_error(function() sc:wait(function() return true end, 1) end)
            local r
            sc:spawn(function(ok, v) r = { ok, v } end, function()
                return sc:wait(function() return true end, 1)
            end)
            sc:step()
            assert.same({ true, true }, r)
        end)
    end)
end)
