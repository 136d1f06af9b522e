-- The emulator's MessagePack hub protocol: framing, the JSON transcoder
-- (arrays, objects and nulls as sent), and client bytes that never raise.
local msgpack = require "signalr_emulator.msgpack"
local mp = msgpack.mp

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x ", c:byte()) end)) end

describe("emulator MessagePack", function()
    it("frames with a varint length, and splits frames again", function()
        assert.equal("02 91 06 ", hex(msgpack.from_record('{"type":6}')))
        local two = msgpack.from_record('{"type":6}') .. msgpack.from_record('{"type":7,"error":"x"}')
        local parts = msgpack.split(two)
        assert.equal(2, #parts)
        assert.equal(6, msgpack.to_record(parts[1]).type)
        assert.equal(7, msgpack.to_record(parts[2]).type)
        assert.equal("\200\1", msgpack.varint(200))
        assert.is_nil(msgpack.split("\5\1"))       -- shorter than its length
        assert.is_nil(msgpack.split("\255\255\255\255\255\255")) -- a runaway varint
    end)

    it("transcodes JSON arguments as they were sent", function()
        local b = msgpack.from_json('["s",null,{"a":[1,2],"e":{}},[],1.5,-3,true,false,1e3,12345678901]')
        local t = mp.unpack(b)
        assert.equal("s", t[1])
        assert.is_nil(t[2])
        assert.same({ 1, 2 }, t[3].a)
        assert.equal(1.5, t[5])
        assert.equal(-3, t[6])
        assert.is_true(t[7])
        assert.is_false(t[8])
        assert.equal(1000, t[9])
        assert.equal(12345678901, t[10])
        -- the empty array and the empty object keep their kinds
        assert.truthy(hex(b):find("80 ", 1, true)) -- {} (map 0)
        assert.truthy(hex(b):find("90 ", 1, true)) -- [] (array 0)
        local inv = mp.unpack(msgpack.split(msgpack.from_record(
            '{"type":1,"target":"m","arguments":["x",{"k":null}]}'))[1])
        assert.equal(1, inv[1])
        assert.equal("m", inv[4])
        assert.equal("x", inv[5][1])
    end)

    it("client bytes never raise", function()
        math.randomseed(99)
        for _ = 1, 3000 do
            local t = {}
            for j = 1, math.random(0, 30) do t[j] = string.char(math.random(0, 255)) end
            local s = table.concat(t)
            local ok, parts = pcall(msgpack.split, s)
            assert(ok, parts)
            for _, p in ipairs(parts or {}) do
                local ok2, err = pcall(msgpack.to_record, p)
                assert(ok2, err)
            end
        end
        assert.has_error(function() msgpack.from_json("[1,") end)
    end)
end)
