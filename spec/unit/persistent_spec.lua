-- Persistent mode without a service: the frames the C core writes, read
-- back by an independent MessagePack decoder (lua-messagepack); the
-- options; and the pool's behaviour when no connection comes up (queue,
-- EQUEUEFULL, ECONNECT with the last attempt's error, expiry, close).
local signalr = require "signalr"
local core = require "signalr.core"

-- lua-messagepack, as the emulator loads it (Debian packages it for 5.1-5.3)
local mp = require("signalr_emulator.msgpack").mp
local cjson = require "cjson"

-- the body of a frame (its varint prefix checked and removed)
local function body(frame)
    local len, shift, i = 0, 0, 1
    repeat
        local b = frame:byte(i)
        len = len + (b % 128) * 2 ^ shift
        shift, i = shift + 7, i + 1
    until b < 128
    assert.equal(#frame - i + 1, len)
    return mp.unpack(frame:sub(i))
end

-- A port nothing listens on: connects are refused at once.
local function closed_port()
    return 1 -- tcpmux: not served on a test machine, and privileged
end

describe("service-protocol frames, read back independently", function()
    it("a broadcast carries both payloads, each the complete hub message", function()
        local args = '["hi",{"a":[1,2.5,null,true]},-3]'
        local f = assert(core.sp_data(10, nil, { "c1", "c2" }, "newMessage", args, 3))
        local m = body(f)
        assert.equal(10, m[1])
        assert.same({ "c1", "c2" }, m[2])
        local json = m[3].json
        assert.equal("\30", json:sub(-1))
        local inv = cjson.decode(json:sub(1, -2))
        assert.equal(1, inv.type)
        assert.equal("newMessage", inv.target)
        assert.is_nil(inv.invocationId)
        local packed = m[3].messagepack
        -- the hub message's own varint prefix, then [1, {}, nil, target, args, []]
        assert.equal(#packed - 1, packed:byte(1))
        local hubmsg = mp.unpack(packed:sub(2))
        assert.equal(1, hubmsg[1])
        assert.is_nil(hubmsg[3])
        assert.equal("newMessage", hubmsg[4])
        assert.equal("hi", hubmsg[5][1])
        assert.equal(2.5, hubmsg[5][2].a[2])
        assert.is_nil(hubmsg[5][2].a[3])
        assert.is_true(hubmsg[5][2].a[4])
        assert.equal(-3, hubmsg[5][3])
        assert.same({}, hubmsg[6])
    end)

    it("one protocol only: one payload", function()
        local m = body(assert(core.sp_data(8, "u1", nil, "t", "[]", 1)))
        assert.equal(8, m[1])
        assert.equal("u1", m[2])
        assert.truthy(m[3].json)
        assert.is_nil(m[3].messagepack)
        m = body(assert(core.sp_data(14, nil, { "g1", "g2" }, "t", nil, 2)))
        assert.same({ "g1", "g2" }, m[2])
        assert.is_nil(m[3].json)
    end)

    it("acknowledged operations and closes", function()
        local m = body(assert(core.sp_op(26, "u1", "g1", nil, nil, 7, 60)))
        assert.same({ 26, "u1", "g1", 7 }, { m[1], m[2], m[3], m[4] })
        assert.equal(60, m[5][2])
        m = body(assert(core.sp_op(27, "u1", nil, nil, nil, 8)))
        assert.equal(27, m[1])
        assert.is_nil(m[3]) -- every group
        assert.equal(8, m[4])
        m = body(assert(core.sp_op(5, "c1", nil, "bye")))
        assert.same({ 5, "c1", "bye" }, { m[1], m[2], m[3] })
        m = body(core.sp_handshake(2))
        assert.same({ 1, 1, 2, "", 0 }, { m[1], m[2], m[3], m[4], m[5] })
        m = body(core.sp_ping("status", "1"))
        assert.same({ 3, "status", "1" }, m)
    end)

    it("bad input: errors, not frames", function()
        local f, msg, d = core.sp_data(10, nil, nil, "t", "{}", 3)
        assert.is_nil(f)
        assert.equal("EINVAL", d.code)
        assert.matches("array", msg)
        f, msg, d = core.sp_data(10, nil, nil, "t", '["' .. string.rep("x", 4000) .. '"]', 3, 1024)
        assert.is_nil(f)
        assert.equal("ETOOBIG", d.code)
        assert.matches("limit", msg)
        f, msg, d = core.sp_op(18, "c1", nil, nil, nil, 1)
        assert.is_nil(f)
        assert.matches("group", msg)
        assert.equal("EINVAL", d.code)
        assert.has_error(function() core.sp_data(10, nil, { 1 }, "t", "[]", 3) end)
        assert.has_error(function() core.sp_ping("odd") end)
    end)
end)

describe("core.sp_data's name checks (its 8th argument)", function()
    it("checks the id and the list by what the type names; a bad one gives its index", function()
        local f, msg, d, at = core.sp_data(13, "a\nb", nil, "t", "[]", 3, nil, true)
        assert.is_nil(f)
        assert.equal(0, at)
        assert.equal("EINVAL", d.code)
        assert.matches("^group name has a line break at character 2", msg)
        f, msg, d, at = core.sp_data(10, nil, { "c1", "" }, "t", "[]", 3, nil, true)
        assert.is_nil(f)
        assert.equal(2, at)
        assert.equal("connection id is empty", msg)
        assert.equal("EINVAL", d.code)
        f, msg, d, at = core.sp_data(8, "u\0x", nil, "t", "[]", 3, nil, true)
        assert.is_nil(f)
        assert.equal(0, at)
        assert.equal("user id contains a NUL byte", msg)
        assert.equal("EINVAL", d.code)
        f, msg, d, at = core.sp_data(14, nil, { "g1", " " }, "t", "[]", 3, nil, true)
        assert.is_nil(f)
        assert.equal(2, at)
        assert.equal("group name is only white space", msg)
        assert.equal("EINVAL", d.code)
        f, msg, d, at = core.sp_data(9, nil, { string.rep("u", 1025) }, "t", "[]", 3, nil, true)
        assert.is_nil(f)
        assert.equal("EINVAL", d.code)
        assert.equal(1, at)
        assert.matches("^user id is 1025 ", msg)
        -- without the flag nothing is checked; good names pass with it
        assert.truthy(core.sp_data(13, "a\nb", nil, "t", "[]", 3))
        assert.truthy(core.sp_data(13, "g1", { "c1" }, "t", "[]", 3, nil, true))
    end)
end)

describe("core.sp_send: a send's frame straight from its argument list", function()
    local SP = core.sp
    local cases = {
        { SP.BROADCAST, nil }, { SP.USER_DATA, "u 1" }, { SP.GROUP_BROADCAST, "g/1" },
    }
    local lists = {
        { "hello", { x = 1 } }, { 1, -2, 3.5, true, false, core.json_null }, { { {} }, { "a\"b\\\n" } },
        { string.rep("y", 70000) }, { setmetatable({}, { __index = function() end }), 0 },
        { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 } }, { "\u{1F600}", "é" },
    }
    it("gives the bytes core.sp_data gives for json_encode_args's text", function()
        for _, c in ipairs(cases) do
            for _, args in ipairs(lists) do
                for _, protocols in ipairs { SP.JSON, SP.MESSAGEPACK, SP.JSON + SP.MESSAGEPACK } do
                    local want = assert(core.sp_data(c[1], c[2], nil, "newMessage",
                        assert(core.json_encode_args(args)), protocols, nil, true))
                    assert.equal(want, core.sp_send(c[1], c[2], "newMessage", args, protocols))
                end
            end
        end
    end)
    it("writes the MessagePack the transcoding of the text gives, for random argument lists", function()
        -- the one-pass path writes the MessagePack from the Lua values;
        -- the general path transcodes the JSON text: every number form,
        -- header size and string length near its bounds, at random
        local int = math.tointeger or function(x) return x end
        local numbers = {
            0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 2 ^ 53, 2 ^ 53 + 2, 2 ^ 60,
            -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -(2 ^ 53), -0.0,
            0.1, -2.5, 1e300, -1e-300, 5e-324, 1e17, 123456789012345680, 1 / 3, 1e21, 4503599627370496.5,
        }
        if math.type then -- 5.3+: integers of every width, and floats of the same values
            for _, v in ipairs { 127, 128, -33, 65536, -2147483649, math.maxinteger, math.mininteger } do
                numbers[#numbers + 1] = int(v)
                numbers[#numbers + 1] = v + 0.0
            end
        end
        local seed = 7
        local function rnd(n) -- deterministic, the same on every Lua
            seed = (seed * 1103515245 + 12345) % 2147483648
            return seed % n + 1
        end
        local chars = { "a", "z", "\"", "\\", "\n", "\0", "/", "é", "\u{1F600}", "\u{7F}", " " }
        local function str()
            local lens = { 0, 1, 31, 32, 255, 256, 300 }
            local n = lens[rnd(#lens)]
            local t = {}
            for i = 1, n do t[i] = chars[rnd(#chars)] end
            return table.concat(t)
        end
        local value
        local function container(depth)
            local sizes = { 0, 1, 2, 15, 16, 17 }
            local n = sizes[rnd(#sizes)]
            local t = {}
            local k = rnd(3)
            if k == 1 then
                for i = 1, n do t[i] = value(depth + 1) end
                if n == 0 and rnd(2) == 1 then return core.json_empty_array end
            elseif k == 2 then
                -- filled from the end: the array's keys may come out of
                -- order (the encoder's slow path)
                for i = n, 1, -1 do t[i] = value(depth + 1) end
            else
                for i = 1, n do t["k" .. i .. ("ab\"\\\n"):sub(1, rnd(5))] = value(depth + 1) end
            end
            return t
        end
        value = function(depth)
            local k = rnd(depth < 4 and 7 or 5)
            if k == 1 then return numbers[rnd(#numbers)] end
            if k == 2 then return str() end
            if k == 3 then return rnd(2) == 1 end
            if k == 4 then return core.json_null end
            if k == 5 then return (rnd(1000) - 500) / 8 end
            return container(depth)
        end
        local P = SP.JSON + SP.MESSAGEPACK
        for _ = 1, 400 do
            local args = { value(0) }
            for i = 2, rnd(4) do args[i] = value(1) end
            local text = assert(core.json_encode_args(args))
            local want = assert(core.sp_data(SP.BROADCAST, nil, nil, "t", text, SP.MESSAGEPACK, nil, true))
            assert.equal(want, core.sp_send(SP.BROADCAST, nil, "t", args, SP.MESSAGEPACK), text)
            want = assert(core.sp_data(SP.BROADCAST, nil, nil, "t", text, P, nil, true))
            assert.equal(want, core.sp_send(SP.BROADCAST, nil, "t", args, P), text)
        end
        -- a member table of more than 65535 (the 32-bit headers)
        local big, map = {}, {}
        for i = 1, 70000 do big[i] = i % 3 == 0 and "s" or i end
        for i = 1, 70000 do map["k" .. i] = i end
        for _, args in ipairs { { big }, { map }, { big, map } } do
            local want = assert(core.sp_data(SP.BROADCAST, nil, nil, "t",
                assert(core.json_encode_args(args)), P, nil, true))
            assert.equal(want, core.sp_send(SP.BROADCAST, nil, "t", args, P))
        end
    end)
    it("leaves tables nested deeper than 64 to the general path, which sends them", function()
        local deep = {}
        local t = deep
        for _ = 1, 70 do t[1] = {} t = t[1] end
        assert.is_false(core.sp_send(SP.BROADCAST, nil, "t", { deep }, SP.MESSAGEPACK))
        local text = assert(core.json_encode_args { deep })
        assert.truthy(core.sp_data(SP.BROADCAST, nil, nil, "t", text, SP.MESSAGEPACK, nil, true))
        -- JSON clients only: no MessagePack, no limit of 64
        assert.equal(core.sp_data(SP.BROADCAST, nil, nil, "t", text, SP.JSON, nil, true),
            core.sp_send(SP.BROADCAST, nil, "t", { deep }, SP.JSON))
        -- past what the core's check of a text takes (512): refused by
        -- both, as the general path refuses it
        for _ = 1, 600 do t[1] = {} t = t[1] end
        text = assert(core.json_encode_args { deep })
        assert.is_nil(core.sp_data(SP.BROADCAST, nil, nil, "t", text, SP.JSON, nil, true))
        assert.is_false(core.sp_send(SP.BROADCAST, nil, "t", { deep }, SP.JSON))
    end)
    it("answers false for what is not the common case, or fails", function()
        local P = SP.JSON + SP.MESSAGEPACK
        for _, k in ipairs {
            { SP.BROADCAST, nil, "t", nil }, { SP.BROADCAST, nil, "t", {} }, { SP.BROADCAST, nil, "t", "x" },
            { SP.BROADCAST, nil, "t", { 0 / 0 } }, { SP.BROADCAST, nil, "t", { print } },
            { SP.BROADCAST, nil, "t", { "\255" } }, { SP.BROADCAST, nil, "t", { a = 1 } },
            { SP.BROADCAST, nil, "", { 1 } }, { SP.USER_DATA, "", "t", { 1 } },
            { SP.GROUP_BROADCAST, "a\nb", "t", { 1 } }, { SP.USER_DATA, "u\0x", "t", { 1 } },
            { SP.BROADCAST, nil, "t", { string.rep("x", 4000) }, 1024 },
            -- a number is not made a string: the hub raises for it
            { SP.BROADCAST, nil, 5, { 1 } }, { SP.USER_DATA, 7, "t", { 1 } }, { SP.GROUP_BROADCAST, {}, "t", { 1 } },
        } do
            assert.is_false(core.sp_send(k[1], k[2], k[3], k[4], P, k[5]))
        end
        -- the shared JSON buffer is free again: the next encodes give the same
        assert.equal('["a",1]', core.json_encode_args { "a", 1 })
    end)
    it("the hub's sends keep the general path's answers where it is not the common case", function()
        local cs = "Endpoint=http://127.0.0.1;Port=" .. closed_port()
            .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
        local c = assert(signalr.new { connection_string = cs, mode = "persistent", max_message_size = 1024 })
        local h = c:hub("chat")
        local ok, msg, d = h:broadcast("t", { 0 / 0 })
        assert.is_nil(ok)
        assert.truthy(msg:find("^signalr.broadcast: .*NaN"), msg)
        assert.equal("EINVAL", d.code)
        ok, msg, d = h:to_user("u", "t", { string.rep("x", 4000) })
        assert.is_nil(ok)
        assert.truthy(msg:find("^signalr.to_user: .*%(option max_message_size%)$"), msg)
        assert.equal("ETOOBIG", d.code)
        local deep = {}
        for _ = 1, 600 do deep = { deep } end
        ok, msg, d = h:broadcast("t", deep)
        assert.is_nil(ok)
        assert.equal("signalr.broadcast: the arguments nest more than 512 arrays and objects deep"
            .. " (the list itself is one)", msg)
        assert.equal("EINVAL", d.code)
        assert.has_error(function() h:broadcast("t", "not a list") end)
        assert.equal(0, c:status().stats.sent)
        -- what the one-call path leaves to the general one
        local t = h._t
        assert.is_false(t:send_args("to_connection", "chat", "t", { 1 }, "c1"))
        c:close()
        assert.is_false(t:send_args("broadcast", "chat", "t", { 1 }))
    end)
end)

describe("persistent mode's hub sends in one call (the transport's sender)", function()
    local cs = "Endpoint=http://127.0.0.1;Port=" .. closed_port()
        .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
    it("one sender per hub name and method: broadcast, to_user and to_group", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local t = c:hub("chat")._t
        local b = t:sender("chat", "broadcast")
        assert.is_function(b)
        assert.equal(b, t:sender("chat", "broadcast"))
        assert.not_equal(b, t:sender("Chat", "broadcast"))
        assert.not_equal(b, t:sender("chat", "to_user"))
        assert.is_function(t:sender("chat", "to_group"))
        assert.is_nil(t:sender("chat", "to_connection"))
        assert.is_nil(t:sender("chat", "to_users"))
        assert.is_nil(t:sender("chat", "add_user_to_group"))
        -- kept while a hub of the name lives, through full collections
        local h = c:hub("kept")
        local kept = t:sender("kept", "to_group")
        collectgarbage()
        collectgarbage()
        assert.equal(kept, t:sender("kept", "to_group"))
        assert.equal(kept, h._senders.to_group)
        -- a sender answers false for what is not its common case
        assert.is_false(b(5, { 1 }))
        assert.is_false(b("t", "not a list"))
        assert.is_false(t:sender("chat", "to_user")("t", { 1 }, 7))
        assert.equal(0, c:status().stats.sent)
        -- REST has none
        assert.is_nil(assert(signalr.new(cs)):hub("chat")._t.sender)
        c:close()
        assert.is_false(b("t", { 1 }))
    end)
    it("a hub that is gone takes its senders with it", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local function round(r) -- 2,000 hubs of new names, then none
            local hubs = {}
            for i = 1, 2000 do hubs[i] = c:hub("hub" .. r .. "_" .. i) end
            collectgarbage()
            local held = collectgarbage("count")
            assert.equal(2000, #hubs) -- (alive until here)
            hubs = nil -- luacheck: ignore 311
            collectgarbage()
            collectgarbage()
            return held, collectgarbage("count")
        end
        local _, base = round(1) -- the tables' room stays: measured after one round
        local held = round(2) - base
        assert.truthy(held > 300, held) -- 2,000 hubs and 6,000 senders: over 150 bytes each
        round(3)
        local _, after = round(4)
        assert.truthy(after - base < held / 10, (after - base) .. " KiB more after two rounds of " .. held)
        c:close()
    end)
    it("a client whose callbacks hold one of its hubs is still collected", function()
        -- (a weak-keyed table alone keeps its values on Lua 5.1 and
        -- LuaJIT, and a function in the registry is kept everywhere)
        local probe = setmetatable({}, { __mode = "k" })
        for _, o in ipairs {
            { mode = "persistent", on_done = true },
            { mode = "persistent", on_log = true },
            { on_log = true },
            { async = true, on_log = true },
        } do
            local hub
            local f = function() return hub end
            local c = assert(signalr.new { connection_string = cs, mode = o.mode, async = o.async,
                on_done = o.on_done and f, on_log = o.on_log and f })
            hub = c:hub("chat")
            probe[c], probe[hub] = true, true
        end
        for _ = 1, 4 do collectgarbage() end
        local left = 0
        for _ in pairs(probe) do left = left + 1 end
        assert.equal(0, left)
    end)
    it("keeps the general path's raises, for a wrong self and wrong argument types", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local h = c:hub("chat")
        for _, case in ipairs {
            { function() h.broadcast("t", { 1 }) end, "signalr.broadcast: call it as hub:broadcast(...)" },
            { function() h.to_user(7, "t", { 1 }) end, "signalr.to_user: call it as hub:to_user(...)" },
            { function() h.to_group(nil, "g", "t") end, "signalr.to_group: call it as hub:to_group(...)" },
            { function() h:broadcast(5, { 1 }) end, "signalr.broadcast: target must be a string, got number" },
            { function() h:broadcast(nil, { 1 }) end, "signalr.broadcast: target must be a string, got nil" },
            { function() h:to_user(7, "t", { 1 }) end, "signalr.to_user: user_id must be a string, got number" },
            { function() h:to_group(nil, "t", { 1 }) end, "signalr.to_group: group must be a string, got nil" },
            { function() h:to_group("g", 1, { 1 }) end, "signalr.to_group: target must be a string, got number" },
            { function() h:broadcast("t", { 1 }, { bogus = true }) end,
              "signalr.broadcast: unknown option 'bogus'" },
            { function() h:to_user("u", "t", { 1 }, { exclude = {} }) end,
              "signalr.to_user: unknown option 'exclude'" },
        } do
            assert.has_error(case[1], case[2])
        end
        assert.equal(0, c:status().stats.sent)
        c:close()
    end)
    it("sends for the hub it is called on, and answers as the general path once closed", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local h, other = c:hub("chat"), c:hub("other")
        -- the connection is refused at once: ECONNECT, each for its hub
        for _, send in ipairs {
            function() return h:broadcast("t", { 1 }) end,
            function() return h.broadcast(other, "t", { 2 }) end,
            function() return h:to_group("g", "t", { 3 }, { exclude = { "c1" } }) end,
        } do
            local ok, msg, d = send()
            assert.is_nil(ok)
            assert.truthy(msg:find("no server connection is up", 1, true), msg)
            assert.equal("ECONNECT", d.code)
        end
        local hubs = c:status().hubs
        assert.is_table(hubs.chat)
        assert.is_table(hubs.other)
        c:close()
        for _, send in ipairs {
            function() return h:broadcast("t", { 1 }) end,
            function() return h:to_user("u", "t", { 1 }) end,
            function() return h:to_group("g", "t") end,
        } do
            local ok, msg, d = send()
            assert.is_nil(ok)
            assert.truthy(msg:find("the client is closed", 1, true), msg)
            assert.same({ code = "ECANCELED", sent = false }, d)
        end
    end)
end)

describe("persistent mode's sends refuse bad names before any connection", function()
    local cs = "Endpoint=http://127.0.0.1;Port=" .. closed_port()
        .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
    it("with the hub method's name, the list's key and the item's index", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local h = c:hub("chat")
        local GROUP_LF = "group name has a line break at character 2 (the service's pattern"
            .. " ^(?!\\s+$).+$ allows none)"
        for _, case in ipairs {
            { function() return h:to_group("a\nb", "t", { 1 }) end, "signalr.to_group: " .. GROUP_LF },
            { function() return h:to_group("a\nb", "t", { 1 }, { endpoints = { "" } }) end,
              "signalr.to_group: " .. GROUP_LF },
            { function() return h:to_user("", "t") end, "signalr.to_user: user id is empty" },
            { function() return h:to_connection("", "t") end, "signalr.to_connection: connection id is empty" },
            { function() return h:broadcast("t", {}, { exclude = { "c1", "" } }) end,
              "signalr.broadcast: excluded[2]: connection id is empty" },
            { function() return h:to_group("g", "t", {}, { exclude = { "" } }) end,
              "signalr.to_group: excluded[1]: connection id is empty" },
            { function() return h:to_users({ "u1", "" }, "t") end, "signalr.to_users: users[2]: user id is empty" },
            { function() return h:to_groups({ " " }, "t") end,
              "signalr.to_groups: groups[1]: group name is only white space" },
            { function() return h:to_connections({ "c", "" }, "t") end,
              "signalr.to_connections: connections[2]: connection id is empty" },
        } do
            local ok, msg, d = case[1]()
            assert.is_nil(ok)
            assert.equal(case[2], msg)
            assert.equal("EINVAL", d.code)
        end
        -- nothing was queued or sent
        local n = c:pending()
        assert.equal(0, n)
        assert.equal(0, c:status().stats.sent)
        c:close()
    end)
end)

describe("persistent mode's options", function()
    local cs = "Endpoint=http://127.0.0.1;Port=" .. closed_port()
        .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
    it("are checked in signalr.new", function()
        for _, bad in ipairs {
            { mode = "fast" }, { mode = "persistent", async = true },
            { mode = "persistent", connection_count = 0 }, { mode = "persistent", connection_count = 1.5 },
            { mode = "persistent", max_message_size = 10 }, { mode = "persistent", protocols = {} },
            { mode = "persistent", protocols = { "xml" } }, { mode = "persistent", server_timeout = 0 },
            { connection_count = 2 }, { ack_timeout = 1 }, { mode = "persistent", protocols = "json" },
        } do
            bad.connection_string = cs
            assert.has_error(function() signalr.new(bad) end)
        end
        local c = assert(signalr.new { connection_string = cs, mode = "persistent", protocols = { "json" },
                                       connection_count = 2, max_message_size = 2048 })
        c:close()
    end)
end)

describe("persistent mode with no service", function()
    local cs = "Endpoint=http://127.0.0.1;Port=" .. closed_port()
        .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"

    it("queues while connecting, then fails fast with the attempt's error; queued ones expire", function()
        local done = {}
        local c = assert(signalr.new { connection_string = cs, mode = "persistent", timeout = 0.3,
                                       queue_size = 2, on_done = function(r) done[#done + 1] = r end })
        local h = assert(c:hub("chat"))
        local req = h:broadcast("t", { 1 })
        if type(req) == "table" then
            -- the refusal is seen in poll; until then calls queue
            assert.equal("broadcast", req.op)
            local deadline = core.monotonic() + 5
            while not req.done and core.monotonic() < deadline do c:poll(0.05) end
            assert.is_true(req.done)
            assert.equal("ETIMEDOUT", req.details.code)
            assert.is_false(req.details.sent)
            assert.equal(req, done[1])
        end
        local r, msg, d = h:broadcast("t", { 2 })
        if r == nil then
            assert.equal("ECONNECT", d.code)
            assert.is_false(d.sent)
            assert.matches("no server connection is up", msg)
            assert.matches("connect", d.last_error)
        end
        -- the status names the state and the error
        local st = c:status().hubs.chat.connections[1]
        assert.truthy(st.last_error)
        c:close()
    end)

    it("after the client is closed, calls answer ECANCELED; nothing was sent", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local h = assert(c:hub("chat"))
        h:broadcast("t", { 1 })
        c:close()
        local r, _, d = h:broadcast("t", { 2 })
        assert.is_nil(r)
        assert.equal("ECANCELED", d.code)
        assert.is_false(d.sent)
    end)

    it("an acknowledged call with no connection coming up answers at once", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent", timeout = 2 })
        local h = assert(c:hub("chat"))
        local t0 = core.monotonic()
        local r, _, d = h:user_exists("u")
        assert.is_nil(r)
        assert.truthy(d.code == "ECONNECT" or d.code == "ETIMEDOUT")
        assert.is_false(d.sent)
        assert.is_true(core.monotonic() - t0 < 3)
        c:close()
    end)

    it("names are checked before anything is queued; wrong types raise", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local h = assert(c:hub("chat"))
        local r, _, d = h:to_group("", "t", {})
        assert.is_nil(r)
        assert.equal("EINVAL", d.code)
        r, _, d = h:to_users({ "a", "" }, "t", {})
        assert.is_nil(r)
        assert.equal("EINVAL", d.code)
        assert.has_error(function() h:to_groups("g", "t", {}) end)
        assert.has_error(function() h:to_users({ "a", 2 }, "t", {}) end)
        assert.has_error(function() h:to_connections({}, "t", {}) end)
        assert.equal(0, (c:pending()))
        c:close()
    end)

    it("arguments JSON cannot carry (invalid UTF-8) are EINVAL; nothing is queued", function()
        local c = assert(signalr.new { connection_string = cs, mode = "persistent" })
        local h = assert(c:hub("chat"))
        for _, call in ipairs {
            function() return h:broadcast("m", { "bad\255\254" }) end,
            function() return h:to_user("u", "m", { { k = "\192\175" } }) end,
            function() return h:to_group("g", "m", { "\237\160\128" }) end,
            function() return h:to_connection("c", "m", { "\255" }) end,
            function() return h:to_users({ "a", "b" }, "m", { "\255" }) end,
            function() return h:to_groups({ "a" }, "m", { { ["\255"] = 1 } }) end,
        } do
            local r, msg, d = call()
            assert.is_nil(r)
            assert.equal("EINVAL", d.code)
            -- the encoder refuses them, naming where the value is
            assert.matches("^signalr%.[%w_]+: arguments cannot be encoded as JSON: a %w+ that is not valid"
                .. " UTF%-8 %(byte %d+%) cannot be encoded as JSON %(at %$[^)]*%)$", msg)
        end
        assert.equal(0, (c:pending()))
        c:close()
    end)
end)
