--- signalr.core's hub server pieces: the hub protocol reader and writers
-- (core.hub_reader, core.hub_*, core.hub) and the service protocol's
-- messages for a hub server (core.sp_read, core.sp_connection_data).
local core = require "signalr.core"

local H, SP = core.hub, core.sp
local RS = "\30"
local ok_mp, mp = pcall(require, "MessagePack")
if not ok_mp then mp = nil end

-- ===== a small MessagePack writer of our own, for hand-built input =====
local char = string.char
local function u16(n) return char(math.floor(n / 256) % 256, n % 256) end
local M = {}
M.null, M.t, M.f = "\192", "\195", "\194"
function M.int(n)
    if n >= 0 and n < 128 then return char(n) end
    if n < 0 and n >= -32 then return char(256 + n) end
    if n >= 0 and n < 65536 then return "\205" .. u16(n) end
    error("M.int: out of the range this writer needs")
end
function M.str(s)
    local n = #s
    if n < 32 then return char(0xa0 + n) .. s end
    if n < 256 then return "\217" .. char(n) .. s end
    return "\218" .. u16(n) .. s
end
function M.bin(s)
    assert(#s < 256)
    return "\196" .. char(#s) .. s
end
function M.arr(...)
    local items, n = { ... }, select("#", ...)
    assert(n < 16)
    return char(0x90 + n) .. table.concat(items)
end
-- pairs as a flat list k1, v1, k2, v2 (keys may repeat)
function M.map(...)
    local items, n = { ... }, select("#", ...)
    assert(n % 2 == 0 and n < 32)
    return char(0x80 + n / 2) .. table.concat(items)
end
M.f64_1_5 = "\203\63\248\0\0\0\0\0\0" -- 1.5 as a float64
local function varint(n)
    local out = {}
    repeat
        local b = n % 128
        n = math.floor(n / 128)
        out[#out + 1] = char(n > 0 and b + 128 or b)
    until n == 0
    return table.concat(out)
end
local function framed(body) return varint(#body) .. body end

local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x ", c:byte()) end)):sub(1, -2)
end
local function unhex(h) return (h:gsub("%s*(%x%x)%s*", function(x) return char(tonumber(x, 16)) end)) end

-- every message of bytes fed one byte at a time
local function feed_bytes(r, bytes)
    local all = {}
    for i = 1, #bytes do
        local list, msg, details = r:feed(bytes:sub(i, i))
        if not list then return nil, msg, details, all end
        for _, m in ipairs(list) do all[#all + 1] = m end
    end
    return all
end

local JSON_HANDSHAKE = '{"protocol":"json","version":1}' .. RS
local MP_HANDSHAKE = '{"protocol":"messagepack","version":1}' .. RS

describe("signalr.core hub protocol", function()
    it("names the constants of the core", function()
        assert.same({ HANDSHAKE = 0, INVOCATION = 1, STREAM_ITEM = 2, COMPLETION = 3, STREAM_INVOCATION = 4,
                      CANCEL_INVOCATION = 5, PING = 6, CLOSE = 7, ACK = 8, SEQUENCE = 9, JSON = 1,
                      MESSAGEPACK = 2, DEFAULT_MAX = 32768, MAX_DEPTH = 64 }, H)
    end)

    describe("hub_reader() on JSON", function()
        local JSON_MESSAGES = table.concat {
            '{"type":1,"invocationId":"1","target":"Send","arguments":["a",2,{"x":1.5}],"headers":{"k":"v"}}', RS,
            '{"type":1,"target":"Fire","arguments":[]}', RS,
            '{"type":4,"invocationId":"2","target":"Count","arguments":[10],"streamIds":["s1"]}', RS,
            '{"type":2,"invocationId":"s1","item":{"n":1}}', RS,
            '{"type":3,"invocationId":"s1"}', RS,
            '{"type":3,"invocationId":"7","result":null}', RS,
            '{"type":3,"invocationId":"8","error":"no"}', RS,
            '{"type":5,"invocationId":"2"}', RS,
            '{"type":99,"what":"a future type"}', RS,
            '{"type":6}', RS,
            '{"type":9,"sequenceId":9007199254740993}', RS,
            '{"type":7,"error":"bye","allowReconnect":true}', RS,
        }
        local EXPECTED = {
            { type = 1, invocation_id = "1", target = "Send", arguments = '["a",2,{"x":1.5}]', headers = { k = "v" } },
            { type = 1, target = "Fire", arguments = "[]" },
            { type = 4, invocation_id = "2", target = "Count", arguments = "[10]", stream_ids = '["s1"]' },
            { type = 2, invocation_id = "s1", item = '{"n":1}' },
            { type = 3, invocation_id = "s1" },
            { type = 3, invocation_id = "7", result = "null" },
            { type = 3, invocation_id = "8", error = "no" },
            { type = 5, invocation_id = "2" },
            { type = 6 },
            { type = 9, sequence_id = math.type and 9007199254740993 or 2 ^ 53 },
            { type = 7, error = "bye", allow_reconnect = true },
        }

        it("reads the handshake, then every message type, all at once", function()
            local r = assert(core.hub_reader())
            assert.equal(0, r:protocol())
            assert.same({ { type = 0, protocol = "json", version = 1 } }, r:feed(JSON_HANDSHAKE))
            assert.equal(H.JSON, r:protocol())
            assert.same(EXPECTED, r:feed(JSON_MESSAGES))
            assert.same({}, r:feed(""))
        end)

        it("reads the same bytes split anywhere, one byte at a time", function()
            local r = assert(core.hub_reader(H.JSON))
            local all = assert(feed_bytes(r, JSON_HANDSHAKE .. JSON_MESSAGES))
            table.remove(all, 1)
            assert.same(EXPECTED, all)
        end)

        it("gives arguments as JSON text that core.json_decode reads", function()
            local r = assert(core.hub_reader())
            r:feed(JSON_HANDSHAKE)
            local m = r:feed('{"type":1,"target":"t","arguments":[9007199254740993,"\\u00e9",null]}' .. RS)[1]
            local args = core.json_decode(m.arguments)
            assert.equal(math.type and 9007199254740993 or 2 ^ 53, args[1])
            assert.equal("\195\169", args[2])
            assert.equal(core.json_null, args[3])
        end)

        it("passes a Close from the client without allowReconnect as false", function()
            local r = assert(core.hub_reader())
            r:feed(JSON_HANDSHAKE)
            assert.same({ { type = 7, allow_reconnect = false } }, r:feed('{"type":7}' .. RS))
        end)

        it("reads version 2 of the handshake", function()
            local r = assert(core.hub_reader())
            assert.same({ { type = 0, protocol = "json", version = 2 } },
                r:feed('{"protocol":"json","version":2}' .. RS))
        end)

        it("reads without a handshake after set_protocol()", function()
            local r = assert(core.hub_reader())
            assert.is_true(r:set_protocol(H.JSON))
            assert.same({ { type = 6 } }, r:feed('{"type":6}' .. RS))
        end)
    end)

    describe("hub_reader() on MessagePack", function()
        local H0 = M.map()
        local MP_MESSAGES = table.concat {
            framed(M.arr(M.int(1), M.map(M.str("k"), M.str("v")), M.str("1"), M.str("Send"),
                M.arr(M.str("a"), M.int(2), M.map(M.str("x"), M.f64_1_5)), M.arr())),
            framed(M.arr(M.int(1), H0, M.null, M.str("Fire"), M.arr())), -- 5 items: no stream ids
            framed(M.arr(M.int(4), H0, M.str("2"), M.str("Count"), M.arr(M.int(10)), M.arr(M.str("s1")))),
            framed(M.arr(M.int(2), H0, M.str("s1"), M.bin("\1\2"))), -- binary: base64 in JSON
            framed(M.arr(M.int(3), H0, M.str("s1"), M.int(2))),
            framed(M.arr(M.int(3), H0, M.str("7"), M.int(3), M.int(42))),
            framed(M.arr(M.int(3), H0, M.str("8"), M.int(1), M.str("no"))),
            framed(M.arr(M.int(5), H0, M.str("2"))),
            framed(M.arr(M.int(99), M.str("a future type"))),
            framed(M.arr(M.int(6))),
            framed(M.arr(M.int(7), M.str("bye"), M.t)),
        }
        local EXPECTED = {
            { type = 1, invocation_id = "1", target = "Send", arguments = '["a",2,{"x":1.5}]', headers = { k = "v" } },
            { type = 1, target = "Fire", arguments = "[]" },
            { type = 4, invocation_id = "2", target = "Count", arguments = "[10]", stream_ids = '["s1"]' },
            { type = 2, invocation_id = "s1", item = '"AQI="' },
            { type = 3, invocation_id = "s1" },
            { type = 3, invocation_id = "7", result = "42" },
            { type = 3, invocation_id = "8", error = "no" },
            { type = 5, invocation_id = "2" },
            { type = 6 },
            { type = 7, error = "bye", allow_reconnect = true },
        }

        it("reads the JSON handshake, then every message type, all at once", function()
            local r = assert(core.hub_reader())
            assert.same({ { type = 0, protocol = "messagepack", version = 1 } }, r:feed(MP_HANDSHAKE))
            assert.equal(H.MESSAGEPACK, r:protocol())
            assert.same(EXPECTED, r:feed(MP_MESSAGES))
        end)

        it("reads the same bytes split anywhere, one byte at a time", function()
            local r = assert(core.hub_reader(H.MESSAGEPACK))
            local all = assert(feed_bytes(r, MP_HANDSHAKE .. MP_MESSAGES))
            table.remove(all, 1)
            assert.same(EXPECTED, all)
        end)
    end)

    describe("hub_reader() errors", function()
        local function fails(code, msg, ok, m, details)
            assert.is_nil(ok)
            assert.equal(msg, m)
            assert.equal(code, details.code)
            return details
        end

        it("refuses a protocol the reader was not given, with ASP.NET Core's text", function()
            local r = assert(core.hub_reader(H.JSON))
            local d = fails("EPROTOCOL", "The protocol 'messagepack' is not supported.", r:feed(MP_HANDSHAKE))
            assert.same({}, d.messages)
            fails("EPROTOCOL", "The protocol 'xml' is not supported.",
                core.hub_reader():feed('{"protocol":"xml","version":1}' .. RS))
        end)

        it("refuses a version past 2", function()
            fails("EPROTOCOL", "The server does not support version 3 of the 'json' protocol.",
                core.hub_reader():feed('{"protocol":"json","version":3}' .. RS))
        end)

        it("refuses a message over max_message (ETOOBIG), split or whole", function()
            local r = assert(core.hub_reader(0, 64))
            r:feed(JSON_HANDSHAKE)
            fails("ETOOBIG", "The maximum message size of 64B was exceeded.", r:feed(string.rep(" ", 100)))
            local r2 = assert(core.hub_reader(0, 64))
            r2:feed(MP_HANDSHAKE)
            local ok, msg, d, got = feed_bytes(r2, framed(M.arr(M.int(6))) .. varint(200))
            fails("ETOOBIG", "The maximum message size of 64B was exceeded.", ok, msg, d)
            assert.same({ { type = 6 } }, got)
        end)

        it("keeps the messages read before an error in details.messages, then stays stopped", function()
            local r = assert(core.hub_reader())
            r:feed(JSON_HANDSHAKE)
            local d = fails("EPROTOCOL", "Expected 'type' to be of type Number.",
                r:feed('{"type":6}' .. RS .. '{"type":"x"}' .. RS .. '{"type":6}' .. RS))
            assert.same({ { type = 6 } }, d.messages)
            fails("EINVAL", "the reader stopped at an earlier error", r:feed('{"type":6}' .. RS))
        end)

        for _, c in ipairs {
            { "a missing type", '{"target":"x"}', "Missing required property 'type'." },
            { "an invocation without arguments", '{"type":1,"target":"x"}', "Missing required property 'arguments'." },
            { "a record that is no object", "[1]", "the message is not a JSON object" },
            { "invalid UTF-8", '{"type":6,"x":"\255"}', "the message is not valid UTF-8" },
        } do
            it("refuses " .. c[1] .. " (EPROTOCOL)", function()
                local r = assert(core.hub_reader())
                r:feed(JSON_HANDSHAKE)
                fails("EPROTOCOL", c[3], r:feed(c[2] .. RS))
            end)
        end

        it("refuses set_protocol() once bytes were read, or an unknown protocol", function()
            local r = assert(core.hub_reader())
            r:feed('{"proto')
            fails("EINVAL", "the reader has read bytes", r:set_protocol(H.JSON))
            fails("EINVAL", "unknown protocol 3", assert(core.hub_reader()):set_protocol(3))
        end)

        it("refuses unknown protocols at creation", function()
            fails("EINVAL", "unknown protocols 8", core.hub_reader(8))
        end)

        it("raises on wrong argument types and on a freed reader", function()
            assert.has_error(function() core.hub_reader("x") end)
            assert.has_error(function() core.hub_reader(0, -1) end)
            local r = assert(core.hub_reader())
            assert.has_error(function() r:feed() end)
            r:free()
            r:free() -- idempotent
            assert.has_error(function() r:feed("x") end, "signalr.core: the hub reader is freed")
        end)
    end)

    describe("writers", function()
        it("write the handshake answer (JSON whatever the protocol)", function()
            assert.equal("{}" .. RS, core.hub_handshake_response())
            assert.equal("{}" .. RS, core.hub_handshake_response(""))
            assert.equal('{"error":"The protocol \'x\' is not supported."}' .. RS,
                core.hub_handshake_response("The protocol 'x' is not supported."))
        end)

        it("write JSON messages", function()
            assert.equal('{"type":3,"invocationId":"1","result":3}' .. RS, core.hub_completion(H.JSON, "1", "3"))
            assert.equal('{"type":3,"invocationId":"1","result":null}' .. RS,
                core.hub_completion(H.JSON, "1", "null"))
            assert.equal('{"type":3,"invocationId":"1"}' .. RS, core.hub_completion(H.JSON, "1"))
            assert.equal('{"type":3,"invocationId":"1","error":"x"}' .. RS, core.hub_completion(H.JSON, "1", nil, "x"))
            assert.equal('{"type":2,"invocationId":"1","item":{"a":[1,2]}}' .. RS,
                core.hub_stream_item(H.JSON, "1", '{"a":[1,2]}'))
            assert.equal('{"type":1,"target":"Recv","arguments":["a",1.5]}' .. RS,
                core.hub_invocation(H.JSON, nil, "Recv", '["a",1.5]'))
            assert.equal('{"type":1,"invocationId":"7","target":"Recv","arguments":[]}' .. RS,
                core.hub_invocation(H.JSON, "7", "Recv"))
            assert.equal('{"type":6}' .. RS, core.hub_ping(H.JSON))
            assert.equal('{"type":7}' .. RS, core.hub_close(H.JSON))
            assert.equal('{"type":7,"error":"bye","allowReconnect":true}' .. RS, core.hub_close(H.JSON, "bye", true))
        end)

        -- hub-server.md section 4's byte examples, and the others as the core writes them
        local KNOWN = {
            { "a Completion with a result", "07 95 03 80 a1 31 03 03", core.hub_completion, "1", "3" },
            { "a void Completion", "06 94 03 80 a1 31 02", core.hub_completion, "1" },
            { "an error Completion", "08 95 03 80 a1 31 01 a1 78", core.hub_completion, "1", nil, "x" },
            { "a Ping", "02 91 06", core.hub_ping },
            { "a Close without error", "04 93 07 c0 c2", core.hub_close },
            { "a Close with error and reconnect", "07 93 07 a3 62 79 65 c3", core.hub_close, "bye", true },
            { "a StreamItem", "0b 94 02 80 a1 31 81 a1 61 92 01 02", core.hub_stream_item, "1", '{"a":[1,2]}' },
            { "an Invocation", "16 96 01 80 c0 a4 52 65 63 76 92 a1 61 cb 3f f8 00 00 00 00 00 00 90",
              core.hub_invocation, nil, "Recv", '["a",1.5]' },
        }
        for _, c in ipairs(KNOWN) do
            it("write " .. c[1] .. " in MessagePack as ASP.NET Core does", function()
                local out = assert(c[3](H.MESSAGEPACK, c[4], c[5], c[6]))
                assert.equal(c[2], hex(out))
            end)
        end

        it("write MessagePack that lua-messagepack reads back", function()
            if not mp then
                -- no lua-messagepack for this Lua: the known bytes above hold
                assert.equal(unhex("02 91 06"), core.hub_ping(H.MESSAGEPACK))
                return
            end
            local function body(s) return s:sub(2) end -- every one here is under 128 bytes
            assert.same({ 3, {}, "1", 3, 3 }, mp.unpack(body(core.hub_completion(H.MESSAGEPACK, "1", "3"))))
            assert.same({ 2, {}, "1", { a = { 1, 2 } } },
                mp.unpack(body(core.hub_stream_item(H.MESSAGEPACK, "1", '{"a":[1,2]}'))))
            local inv = mp.unpack(body(core.hub_invocation(H.MESSAGEPACK, "9", "Recv", '["a",1.5,-3]')))
            assert.same({ 1, {}, "9", "Recv", { "a", 1.5, -3 }, {} }, inv)
            assert.same({ 7, "bye", true }, mp.unpack(body(core.hub_close(H.MESSAGEPACK, "bye", true))))
        end)

        it("write what the reader reads back, in both protocols", function()
            for _, p in ipairs { H.JSON, H.MESSAGEPACK } do
                local r = assert(core.hub_reader())
                assert.is_true(r:set_protocol(p))
                local bytes = table.concat {
                    core.hub_completion(p, "1", '{"x":[1,2.5,"y"]}'),
                    core.hub_completion(p, "2"),
                    core.hub_completion(p, "3", nil, "boom"),
                    core.hub_stream_item(p, "4", "9007199254740993"),
                    core.hub_invocation(p, "5", "Recv", '["a",true,null]'),
                    core.hub_ping(p),
                    core.hub_close(p, "bye", true),
                }
                assert.same({
                    { type = 3, invocation_id = "1", result = '{"x":[1,2.5,"y"]}' },
                    { type = 3, invocation_id = "2" },
                    { type = 3, invocation_id = "3", error = "boom" },
                    { type = 2, invocation_id = "4", item = "9007199254740993" },
                    { type = 1, invocation_id = "5", target = "Recv", arguments = '["a",true,null]' },
                    { type = 6 },
                    { type = 7, error = "bye", allow_reconnect = true },
                }, assert(feed_bytes(r, bytes)))
            end
        end)

        it("carry core.json_encode's text", function()
            local args = assert(core.json_encode { "hello", 42, { x = 1.5 } })
            assert.equal('{"type":1,"target":"t","arguments":["hello",42,{"x":1.5}]}' .. RS,
                core.hub_invocation(H.JSON, nil, "t", args))
        end)

        for _, c in ipairs {
            { "an unknown protocol", "EINVAL", "unknown protocol 9", core.hub_completion, 9, "1" },
            { "arguments that are no array", "EINVAL", "the arguments' text is not a JSON array",
              core.hub_invocation, H.JSON, nil, "t", "{}" },
            { "a result that is no JSON", "EINVAL", "the result is not one JSON value",
              core.hub_completion, H.JSON, "1", "[1," },
            { "a target with a NUL byte", "EINVAL", "target contains a NUL byte",
              core.hub_invocation, H.JSON, nil, "t\0x", "[]" },
            { "an error with a NUL byte", "EINVAL", "error contains a NUL byte",
              core.hub_close, H.JSON, "a\0b" },
            { "a target that is not UTF-8", "EINVAL", "the target is not valid UTF-8",
              core.hub_invocation, H.MESSAGEPACK, nil, "t\255", "[]" },
        } do
            it("refuse " .. c[1], function()
                local ok, msg, details = c[4](c[5], c[6], c[7], c[8])
                assert.is_nil(ok)
                assert.equal(c[3], msg)
                assert.equal(c[2], details.code)
            end)
        end

        it("raise on wrong argument types", function()
            assert.has_error(function() core.hub_completion(H.JSON) end)
            assert.has_error(function() core.hub_invocation(H.JSON, nil, nil) end)
            assert.has_error(function() core.hub_stream_item(H.JSON, "1") end)
            assert.has_error(function() core.hub_ping("json") end)
        end)
    end)
end)

describe("signalr.core service protocol for a hub server", function()
    local OPEN = framed(M.arr(M.int(SP.OPEN_CONNECTION), M.str("c1"),
        -- claims: a map whose keys repeat (roles), in order
        M.map(M.str("asrs.s.uid"), M.str("u1"), M.str("role"), M.str("admin"), M.str("role"), M.str("dev"),
              M.str("nil claim"), M.null),
        M.map(M.str("X-Forwarded-For"), M.arr(M.str("10.0.0.1"), M.str("10.0.0.2")), M.str("Empty"), M.arr(),
              M.str("Host"), M.arr(M.str("example.org"))),
        M.str("hub=chat&asrs.op=%2Fchat"),
        M.map(M.int(1), M.str("trace"), M.int(3), M.str("json"))))
    local CLOSE = framed(M.arr(M.int(SP.CLOSE_CONNECTION), M.str("c1"), M.str("gone"),
        M.map(M.str("Asrs-Migrate-To"), M.arr(M.str("server-2"))), M.map()))
    local PARTIAL = framed(M.arr(M.int(SP.CONNECTION_DATA), M.str("c1"), M.bin('{"type":6'),
        M.map(M.int(5), M.int(SP.DATA_OTHER), M.int(6), M.t)))
    local RECONNECT = framed(M.arr(M.int(SP.CONNECTION_RECONNECT), M.str("c1"), M.map()))

    it("reads an OpenConnection: claims in order with duplicates, headers as lists, query, protocol", function()
        local list, used = core.sp_read(OPEN)
        assert.equal(#OPEN, used)
        assert.same({ {
            type = SP.OPEN_CONNECTION, connection_id = "c1", query = "hub=chat&asrs.op=%2Fchat", protocol = "json",
            claims = { { type = "asrs.s.uid", value = "u1" }, { type = "role", value = "admin" },
                       { type = "role", value = "dev" }, { type = "nil claim" } },
            headers = { ["X-Forwarded-For"] = { "10.0.0.1", "10.0.0.2" }, Empty = {}, Host = { "example.org" } },
        } }, list)
    end)

    it("reads an OpenConnection of an older service ([4, id, claims])", function()
        local list = core.sp_read(framed(M.arr(M.int(SP.OPEN_CONNECTION), M.str("c2"), M.map())))
        assert.same({ { type = SP.OPEN_CONNECTION, connection_id = "c2", claims = {}, headers = {} } }, list)
    end)

    it("reads a CloseConnection with its headers", function()
        assert.same({ { type = SP.CLOSE_CONNECTION, connection_id = "c1", error = "gone",
                        headers = { ["Asrs-Migrate-To"] = { "server-2" } } } }, (core.sp_read(CLOSE)))
    end)

    it("reads a CloseConnection the core writes", function()
        local frame = assert(core.sp_op(SP.CLOSE_CONNECTION, "c1", nil, "bye"))
        assert.equal("0b 95 05 a2 63 31 a3 62 79 65 80 80", hex(frame))
        assert.same({ { type = SP.CLOSE_CONNECTION, connection_id = "c1", error = "bye", headers = {} } },
            (core.sp_read(frame)))
    end)

    it("reads ConnectionData: payload, type and fragments", function()
        assert.same({ { type = SP.CONNECTION_DATA, connection_id = "c1", payload = '{"type":6',
                        data_type = SP.DATA_OTHER, partial = true } }, (core.sp_read(PARTIAL)))
    end)

    it("reads a ConnectionReconnect", function()
        assert.same({ { type = SP.CONNECTION_RECONNECT, connection_id = "c1" } }, (core.sp_read(RECONNECT)))
    end)

    it("reads several frames and leaves a frame not complete yet", function()
        local bytes = OPEN .. CLOSE .. PARTIAL .. RECONNECT
        local list, used = core.sp_read(bytes .. PARTIAL:sub(1, 5))
        assert.equal(4, #list)
        assert.equal(#bytes, used)
        for cut = 0, #OPEN - 1 do
            local l, u = core.sp_read(OPEN:sub(1, cut))
            assert.same({}, l)
            assert.equal(0, u)
        end
    end)

    it("counts a malformed message and goes on; a frame over the limit ends the list", function()
        local bad = framed(M.arr(M.int(SP.OPEN_CONNECTION))) -- no connection id
        local list, used = core.sp_read(bad .. RECONNECT)
        assert.equal(1, list.malformed)
        assert.equal(SP.CONNECTION_RECONNECT, list[1].type)
        assert.equal(#bad + #RECONNECT, used)
        local l, u, msg, details = core.sp_read(RECONNECT .. OPEN, 16)
        assert.equal(1, #l)
        assert.equal(#RECONNECT, u)
        assert.truthy(msg:find("the limit is 16", 1, true), msg)
        assert.equal("ETOOBIG", details.code)
    end)

    describe("sp_connection_data()", function()
        it("writes the frame of hub-server.md section 4", function()
            assert.equal("0b 94 06 a2 63 31 c4 03 7b 7d 1e 80",
                hex(assert(core.sp_connection_data("c1", core.hub_handshake_response()))))
        end)
        it("tags the payload's type when asked, and reads back", function()
            local payload = core.hub_completion(H.MESSAGEPACK, "1", "3")
            local frame = assert(core.sp_connection_data("c1", payload, SP.DATA_INVOCATION))
            assert.same({ { type = SP.CONNECTION_DATA, connection_id = "c1", payload = payload,
                            data_type = SP.DATA_INVOCATION, partial = false } }, (core.sp_read(frame)))
            if mp then
                assert.same({ 6, "c1", payload, { [5] = 2 } }, mp.unpack(frame:sub(2)))
            end
        end)
        it("writes an empty payload", function()
            local list = core.sp_read(assert(core.sp_connection_data("c1", "")))
            assert.equal("", list[1].payload)
        end)
        it("refuses a bad connection id or data type", function()
            local ok, msg, details = core.sp_connection_data("c\0", "x")
            assert.is_nil(ok)
            assert.equal("connection_id contains a NUL byte", msg)
            assert.equal("EINVAL", details.code)
            ok, msg, details = core.sp_connection_data("", "x")
            assert.is_nil(ok)
            assert.equal("the connection id is missing", msg)
            assert.equal("EINVAL", details.code)
            ok, msg = core.sp_connection_data("c1", "x", -1)
            assert.is_nil(ok)
            assert.equal("data_type must be 0..2147483647", msg)
            assert.has_error(function() core.sp_connection_data("c1") end)
        end)
    end)
end)
