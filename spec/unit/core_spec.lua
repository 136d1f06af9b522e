-- The private binding (signalr.core): known answers through the C core.
local core = require "signalr.core"

describe("signalr.core", function()
    describe("url_encode() / url_decode()", function()
        for _, c in ipairs {
            { "keeps unreserved", "AZaz09-._~", "AZaz09-._~" },
            { "encodes space", "a b", "a%20b" },
            { "encodes UTF-8", "\195\169", "%C3%A9" },
            { "encodes reserved", "a/b?c", "a%2Fb%3Fc" },
            { "empty string", "", "" },
            { "NUL byte", "a\0b", "a%00b" },
        } do
            it(c[1], function()
                assert.equal(c[3], core.url_encode(c[2]))
                assert.equal(c[2], core.url_decode(c[3]))
            end)
        end
        it("encodes long strings", function()
            assert.equal(string.rep("%20", 5000), core.url_encode(string.rep(" ", 5000)))
        end)
        it("rejects a malformed escape", function()
            local ok, msg, d = core.url_decode("%4")
            assert.is_nil(ok)
            assert.equal("malformed percent-escape", msg)
            assert.equal("EINVAL", d.code)
        end)
        it("raises on a table", function()
            assert.has_error(function() core.url_encode({}) end)
        end)
    end)

    describe("jwt_sign() / jwt_verify()", function()
        it("round-trips and checks expiry", function()
            local tok = assert(core.jwt_sign('{"aud":"x","exp":2000000000}', "key"))
            assert.equal('{"aud":"x","exp":2000000000}', core.jwt_verify(tok, "key", 1999999999))
            local ok, msg = core.jwt_verify(tok, "key", 2000000000)
            assert.is_nil(ok)
            assert.equal("token has expired", msg)
            ok, msg = core.jwt_verify(tok, "other", 1)
            assert.is_nil(ok)
            assert.equal("signature does not match the access key", msg)
        end)
    end)

    describe("read_reply()", function()
        for _, c in ipairs {
            { "broadcast", 202, nil, nil, true },
            { "user_exists", 404, "warning.user.notexisted", nil, false },
            { "group_exists", 404, "Warning.Group.NotExisted", nil, false },
            { "close_connection", 404, "Warning.Connection.NotExisted", nil, true },
        } do
            it(c[1] .. " " .. c[2], function()
                assert.equal(c[5], core.read_reply(c[1], c[2], c[3], c[4]))
            end)
        end
        it("a bare 404 on a check is an error (the SDK's rule)", function()
            local ok, msg, d = core.read_reply("user_exists", 404, nil, nil)
            assert.is_nil(ok)
            assert.equal(404, d.status)
            assert.truthy(msg:find("HTTP 404", 1, true))
        end)
        it("answers data operations with the body", function()
            assert.equal('{"token":"t"}', core.read_reply("generate_client_token", 200, nil, '{"token":"t"}'))
        end)
        it("maps an error status with the service's words", function()
            local ok, msg, d = core.read_reply("broadcast", 400, "Error.X", '{"message":"bad"}')
            assert.is_nil(ok)
            assert.equal("HTTP 400 Bad Request (the service rejected an argument): bad", msg)
            -- sent: the service answered, so the request reached it
            assert.same({ code = "ESTATUS", status = 400, service_code = "Error.X", sent = true }, d)
        end)
        it("raises on an unknown operation", function()
            assert.has_error(function() core.read_reply("nope", 200) end)
        end)
    end)

    describe("client:build()", function()
        local c = assert(core.client("Endpoint=https://h.example;AccessKey=k", { application = "App" }))
        it("builds without I/O, for Lua transports", function()
            local r = assert(c:build("to_group", { hub = "Chat", group = "g 1", target = "t",
                arguments = "[1]", excluded = { "a", "b" } }, 1700000000))
            assert.equal("POST", r.method)
            assert.equal("h.example", r.host)
            assert.equal(443, r.port)
            assert.is_true(r.tls)
            assert.equal("/api/hubs/chat/groups/g%201/:send?application=app&api-version=2022-06-01"
                .. "&excluded=a&excluded=b", r.path)
            assert.equal("https://h.example" .. r.path, r.url)
            assert.equal('{"target":"t","arguments":[1]}', r.body)
            assert.equal("application/json; charset=utf-8", r.headers["Content-Type"])
            assert.truthy(r.headers.Authorization:match("^Bearer "))
            assert.is_false(r.idempotent)
        end)
        it("is pure: the same clock gives the same bytes", function()
            local p = { hub = "h", user = "u" }
            assert.same(c:build("user_exists", p, 1700000000), c:build("user_exists", p, 1700000000))
        end)
        it("returns nil, msg, details for bad data", function()
            local ok, msg, d = c:build("to_user", { hub = "h", user = "", target = "t" })
            assert.is_nil(ok)
            assert.equal("user id is empty", msg)
            assert.equal("EINVAL", d.code)
        end)
        it("raises on a wrongly typed parameter", function()
            assert.has_error(function() c:build("to_user", { hub = "h", user = 5 }) end,
                "params.user must be a string")
        end)
    end)

    describe("client:wire()", function()
        local c = assert(core.client("Endpoint=https://h.example;AccessKey=k", { application = "App" }))
        it("gives the whole request as one string, then the connection's facts", function()
            local p = { hub = "Chat", group = "g 1", target = "t", arguments = "[1]", excluded = { "a", "b" } }
            local bytes, host, port, tls, idempotent, method = assert(c:wire("to_group", p, 1700000000))
            local r = assert(c:build("to_group", p, 1700000000))
            assert.same({ "h.example", 443, true, false, "POST" }, { host, port, tls, idempotent, method })
            local head, body = bytes:match("^(.-\r\n)\r\n(.*)$")
            assert.equal(r.body, body)
            assert.equal("POST " .. r.path .. " HTTP/1.1\r\n", head:match("^[^\n]*\n"))
            assert.truthy(head:find("\r\nHost: h.example\r\n", 1, true))
            assert.truthy(head:find("\r\nAuthorization: " .. r.headers.Authorization .. "\r\n", 1, true))
            assert.truthy(head:find("\r\nContent-Type: application/json; charset=utf-8\r\n", 1, true))
            assert.truthy(head:find("\r\nContent-Length: " .. #r.body .. "\r\n", 1, true))
            bytes, host, port, tls, idempotent, method = assert(c:wire("user_exists", { hub = "h", user = "u" }))
            assert.same({ 443, true, true, "HEAD" }, { port, tls, idempotent, method })
            assert.equal("h.example", host)
            assert.is_nil(bytes:find("Content-Length", 1, true))
            assert.equal("\r\n\r\n", bytes:sub(-4))
        end)
        it("returns nil, msg, details for bad data; raises on a wrong type", function()
            local ok, msg, d = c:wire("to_user", { hub = "h", user = "", target = "t" })
            assert.is_nil(ok)
            assert.equal("user id is empty", msg)
            assert.equal("EINVAL", d.code)
            assert.has_error(function() c:wire("to_user", { hub = "h", user = 5 }) end,
                "params.user must be a string")
        end)
    end)

    describe("retry_delay()", function()
        it("follows the core's policy", function()
            assert.equal(0.1, core.retry_delay("broadcast", 1, "ESTATUS", 503, -1, 2, 0.1, 1))
            assert.is_nil(core.retry_delay("broadcast", 1, "ESTATUS", 500, -1, 2, 0.1, 1))
            assert.equal(0.2, core.retry_delay("user_exists", 2, "ETIMEDOUT", 0, -1, 2, 0.1, 1))
        end)
    end)

    it("lists the operations", function()
        assert.equal("broadcast", core.operations[1])
        assert.equal(24, #core.operations)
        assert.equal("group_connections", core.operations[21])
        assert.equal("execute", core.operations[22])
        assert.equal("invoke", core.operations[23])
        assert.equal("access_key", core.operations[24])
    end)

    describe("pollset()", function()
        it("is one descriptor over several clients' descriptors", function()
            local ps = assert(core.pollset())
            assert.is_number(ps:fd())
            assert.is_false(ps:wait(0))
            local c = assert(core.client("Endpoint=http://127.0.0.1;Port=1;AccessKey="
                .. string.rep("A", 44) .. ";Version=1.0;", { queue_size = 4 }))
            local fd = assert(c:pollfd())
            assert.is_true(ps:add(fd))
            assert.is_true(ps:add(fd)) -- twice: fine
            assert.is_false(ps:wait(0.01))
            ps:remove(fd)
            local ok, msg, d = ps:add(1048576)
            assert.is_nil(ok)
            assert.matches("cannot watch descriptor", msg)
            assert.equal("EINVAL", d.code)
            assert.has_error(function() ps:add("x") end)
            assert.has_error(function() ps:add(-1) end)
            ps:close()
            ps:close() -- twice: fine
            assert.has_error(function() ps:fd() end, "signalr.core: the pollset is closed")
            c:close()
        end)
    end)
end)
