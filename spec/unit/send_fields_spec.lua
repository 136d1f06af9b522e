-- The binding's per-send entry points that take a send's fields as
-- arguments instead of a parameter table (client:call_send, submit_send,
-- wire_send), poll's flat form, and core.json_encode_args: each must give
-- exactly what the table forms give, errors included.
local core = require "signalr.core"

local NOW = 1700000000

-- the four sends: op, the params field their id fills, an id
local SENDS = {
    { "broadcast" },
    { "to_user", "user", "u 1" },
    { "to_group", "group", "g/1" },
    { "to_connection", "connection", "c-1" },
}

local function params_of(op, field, id, excluded)
    local p = { hub = "chat", target = "newMessage", arguments = '["a",1]', excluded = excluded }
    if field then p[field] = id end
    return p, op
end

describe("a send's fields as arguments", function()
    local c = assert(core.client("Endpoint=https://h.example;AccessKey=" .. string.rep("k", 44), {}))

    for _, s in ipairs(SENDS) do
        local op, field, id = s[1], s[2], s[3]
        it(op .. ": wire_send gives the bytes wire gives", function()
            local a = { c:wire(op, params_of(op, field, id), NOW) }
            local b = { c:wire_send(op, "chat", "newMessage", '["a",1]', id, nil, NOW) }
            assert.is_string(a[1])
            assert.same(a, b)
        end)
    end

    it("the argument list itself: the bytes its JSON text gives, encoded in the same call", function()
        local lists = { { "a", 1 }, { "hello", { x = 1 } }, { { 1, 2 }, core.json_null, true, 2.5, "é\n\"" } }
        for _, s in ipairs(SENDS) do
            for _, args in ipairs(lists) do
                local text = assert(core.json_encode_args(args))
                local a = { c:wire_send(s[1], "chat", "newMessage", text, s[3], nil, NOW) }
                local b = { c:wire_send(s[1], "chat", "newMessage", args, s[3], nil, NOW) }
                assert.is_string(a[1])
                assert.same(a, b)
            end
        end
        -- with excluded connections too
        assert.same({ c:wire_send("broadcast", "chat", "t", '["a",1]', nil, { "x 1" }, NOW) },
            { c:wire_send("broadcast", "chat", "t", { "a", 1 }, nil, { "x 1" }, NOW) })
        -- the core's refusals of the other fields, as with the text
        assert.same({ c:wire_send("to_user", "chat", "t", "[1]", "..", nil, NOW) },
            { c:wire_send("to_user", "chat", "t", { 1 }, "..", nil, NOW) })
        assert.same({ c:wire_send("to_user", "chat", "t\0", "[1]", "u\0", nil, NOW) },
            { c:wire_send("to_user", "chat", "t\0", { 1 }, "u\0", nil, NOW) })
    end)

    it("the argument list: false where it is not the common case, and the buffer is free after", function()
        for _, args in ipairs { {}, { a = 1 }, { 0 / 0 }, { print }, { "\255" }, { nil, 2 } } do
            assert.is_false(c:wire_send("broadcast", "chat", "t", args, nil, nil, NOW))
            assert.is_false(c:call_send("broadcast", "chat", "t", args))
        end
        -- a wrong type of another field raises before anything is encoded
        assert.has_error(function() c:wire_send("broadcast", "chat", 5, { 1 }) end)
        assert.has_error(function() c:call_send("to_user", "chat", "t", { 1 }, {}) end)
        assert.equal('["a",1]', core.json_encode_args { "a", 1 })
        assert.is_string(c:wire_send("broadcast", "chat", "t", { "a", 1 }, nil, nil, NOW))
    end)

    it("broadcast and to_group with excluded connections", function()
        for _, op in ipairs { "broadcast", "to_group" } do
            local id = op == "to_group" and "g" or nil
            local p = params_of(op, op == "to_group" and "group" or nil, id, { "x 1", "y" })
            local a = { c:wire(op, p, NOW) }
            local b = { c:wire_send(op, "chat", "newMessage", '["a",1]', id, { "x 1", "y" }, NOW) }
            assert.truthy(a[1]:find("excluded=x%201", 1, true))
            assert.same(a, b)
        end
    end)

    it("names the same field for a NUL byte, in the same order", function()
        local cases = {
            { "to_user", { "chat", "t", "[]", "a\0b" }, { hub = "chat", target = "t", user = "a\0b" }, "user" },
            { "to_group", { "chat", "t\0", "[]", "g\0" }, { hub = "chat", target = "t\0", group = "g\0" }, "group" },
            { "broadcast", { "chat", "t\0", "[]" }, { hub = "chat", target = "t\0" }, "target" },
            { "broadcast", { "chat", "t", "[]", nil, { "ok", "x\0" } },
              { hub = "chat", target = "t", excluded = { "ok", "x\0" } }, "excluded" },
        }
        for _, k in ipairs(cases) do
            local f = k[2]
            local a = { c:wire(k[1], k[3], NOW) }
            local b = { c:wire_send(k[1], f[1], f[2], f[3], f[4], f[5], NOW) }
            assert.is_nil(b[1])
            assert.equal(k[4] .. " contains a NUL byte", b[2])
            assert.equal("EINVAL", b[3].code)
            assert.same(a, b)
        end
    end)

    it("gives the core's refusals as wire does", function()
        local a = { c:wire("to_user", { hub = "chat", target = "t", user = "..", arguments = "[]" }, NOW) }
        local b = { c:wire_send("to_user", "chat", "t", "[]", "..", nil, NOW) }
        assert.is_nil(b[1])
        assert.matches("dot segment", b[2])
        assert.same(a, b)
        a = { c:wire("broadcast", { hub = "chat", target = "t", arguments = "[1,]" }, NOW) }
        b = { c:wire_send("broadcast", "chat", "t", "[1,]", nil, nil, NOW) }
        assert.is_nil(b[1])
        assert.same(a, b)
    end)

    it("a nil field is a missing one, as in the table form", function()
        for _, k in ipairs {
            { "broadcast", { "chat", nil, "[]" }, { hub = "chat", arguments = "[]" } },
            { "to_user", { "chat", "t", "[]", nil }, { hub = "chat", target = "t", arguments = "[]" } },
            { "broadcast", { nil, "t", "[]" }, { target = "t", arguments = "[]" } },
            { "broadcast", { "chat", "t", nil }, { hub = "chat", target = "t" } },
        } do
            local f = k[2]
            local a = { c:wire(k[1], k[3], NOW) }
            local b = { c:wire_send(k[1], f[1], f[2], f[3], f[4], nil, NOW) }
            assert.same(a, b)
        end
    end)

    it("names a list of excluded connections that is not one, in both forms", function()
        assert.has_error(function() c:wire("broadcast", { hub = "chat", target = "t", excluded = "x" }) end,
            "params.excluded must be a list of connection ids")
        assert.has_error(function() c:wire_send("broadcast", "chat", "t", "[]", nil, "x") end,
            "params.excluded must be a list of connection ids")
    end)

    it("raises for an operation that is not a send, or a wrong type", function()
        assert.has_error(function() c:wire_send("user_exists", "chat", "t", "[]", "u") end)
        assert.has_error(function() c:submit_send("close_connection", "chat", "t", "[]", "u") end)
        assert.has_error(function() c:call_send("nonsense", "chat", "t", "[]") end)
        assert.has_error(function() c:wire_send("broadcast", "chat", 5, "[]") end)
        assert.has_error(function() c:wire_send("to_user", "chat", "t", "[]", {}) end)
        assert.has_error(function() c:wire_send("broadcast", "chat", "t", "[]", nil, { 1 }) end)
        assert.has_error(function() c:wire_send("broadcast", "chat", "t", "[]", "an id") end)
        assert.has_error(function() c:wire_send("broadcast", "chat", "t", 5) end)
    end)
end)

describe("client:poll(timeout, buf): the flat form", function()
    it("answers 0 before anything was submitted, and leaves buf alone", function()
        local c = assert(core.client("Endpoint=http://127.0.0.1;Port=1;AccessKey=" .. string.rep("k", 44), {}))
        local buf = { "keep" }
        assert.equal(0, c:poll(0, buf))
        assert.same({ "keep" }, buf)
        assert.has_error(function() c:poll(0, "not a table") end)
        c:close()
    end)

    it("gives id, then a failure's table (error, details, no id)", function()
        -- nothing listens on port 1: the connect is refused
        local c = assert(core.client("Endpoint=http://127.0.0.1;Port=1;AccessKey=" .. string.rep("k", 44),
            { retries = 0 }))
        local id = assert(c:submit_send("to_user", "chat", "t", "[1]", "u"))
        local buf, n = {}, 0
        local deadline = core.monotonic() + 10
        while n == 0 and core.monotonic() < deadline do n = assert(c:poll(0.05, buf)) end
        assert.equal(1, n)
        assert.equal(id, buf[1])
        assert.is_table(buf[2])
        assert.is_nil(buf[2].id)
        assert.is_string(buf[2].error)
        assert.equal("ECONNECT", buf[2].details.code)
        c:close()
    end)

    it("the table form is unchanged", function()
        local c = assert(core.client("Endpoint=http://127.0.0.1;Port=1;AccessKey=" .. string.rep("k", 44),
            { retries = 0 }))
        local id = assert(c:submit("broadcast", { hub = "chat", target = "t", arguments = "[]" }))
        local out = {}
        local deadline = core.monotonic() + 10
        while #out == 0 and core.monotonic() < deadline do out = assert(c:poll(0.05)) end
        assert.equal(1, #out)
        assert.equal(id, out[1].id)
        assert.equal("ECONNECT", out[1].details.code)
        c:close()
    end)
end)

describe("core.json_encode_args", function()
    local enc, args = core.json_encode, core.json_encode_args

    it("gives json_encode's text for a sequence", function()
        for _, v in ipairs {
            { 1 }, { "a", { x = 1.5 }, true }, { core.json_null, 2 }, { { 1, 2 }, {} },
            { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" } },
            { 2 ^ 53, -0.1, "\226\130\172" },
        } do
            assert.equal(enc(v), args(v))
        end
    end)

    it("gives nil for anything the general path must encode or explain", function()
        for _, v in ipairs {
            {}, { a = 1 }, { 1, nil, 3 }, { [1] = 1, x = 2 }, { 0 / 0 }, { "\255" },
            { [2] = 1 }, { math.huge },
        } do
            assert.is_nil(args(v))
        end
        assert.is_nil(args(nil))
        assert.is_nil(args("x"))
        assert.is_nil(args(5))
    end)
end)

describe("core.parse_reply and core.reply_reader (the nginx transport's reader)", function()
    local REP = "HTTP/1.1 404 Not Found\r\nx-ms-error-code: Error.Connection.NotExisted\r\n"
        .. "Retry-After: 3\r\nContent-Length: 5\r\n\r\nnope!"

    it("reads a whole reply in one call", function()
        assert.same({ 404, true, "Error.Connection.NotExisted", 3, "nope!", false },
            { core.parse_reply(REP, false) })
        assert.same({ 202, true, nil, nil, "", false },
            { core.parse_reply("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", false) })
        -- HEAD: the Content-Length names a body that does not follow
        assert.same({ 404, true, nil, nil, "", false },
            { core.parse_reply("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n", true) })
    end)

    it("wants more for a part, and says why a close cuts it", function()
        assert.is_nil(core.parse_reply(REP:sub(1, 30), false))
        local ok, msg, d = core.parse_reply(REP:sub(1, -2), false, true)
        assert.is_false(ok)
        assert.equal("malformed reply: the connection closed in the middle of the reply", msg)
        assert.equal("EHTTP", d.code)
        assert.is_true(d.sent)
        ok, msg = core.parse_reply("220 smtp.example ESMTP\r\n\r\n", false)
        assert.is_false(ok)
        assert.matches("^malformed reply: ", msg)
    end)

    it("a body to the close; bytes past a reply are extra and end keep-alive", function()
        assert.same({ 200, false, nil, nil, "abc", false },
            { core.parse_reply("HTTP/1.1 200 OK\r\n\r\nabc", false, true) })
        assert.same({ 202, false, nil, nil, "", true },
            { core.parse_reply("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\nHTTP/1.1", false) })
    end)

    it("a reader fed in parts gives the same reply, once", function()
        for _, w in ipairs { 1, 7, 40 } do
            local rd = core.reply_reader(false)
            local out
            for i = 1, #REP, w do
                out = { rd:feed(REP:sub(i, i + w - 1)) }
                if out[1] ~= nil then break end
            end
            assert.same({ core.parse_reply(REP, false) }, out)
            local ok, msg = rd:feed("x")
            assert.is_false(ok)
            assert.matches("one per reply", msg)
        end
        local rd = core.reply_reader(false)
        assert.is_nil(rd:feed(REP:sub(1, 50)))
        local ok, msg = rd:feed("", true)
        assert.is_false(ok)
        assert.matches("closed in the middle", msg)
        assert.has_error(function() rd:feed({}) end)
        assert.has_error(function() core.parse_reply(nil) end)
    end)
end)
