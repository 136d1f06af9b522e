-- signalr.util: the helpers the layer shares.  No network.
local util = require "signalr.util"

describe("signalr.util", function()
    describe("names()", function()
        it("reads names and endpoint tables; nil stays nil", function()
            assert.is_nil(util.names(nil, "broadcast"))
            assert.same({ "eu", "us" }, util.names({ "eu", { name = "us", online = false } }, "broadcast"))
        end)
        for _, c in ipairs {
            { "eu", "opts.endpoints must be a list of endpoint names or endpoint tables, got string" },
            { { "eu", x = 1 }, "opts.endpoints must be a list (a sequence)" },
            { { {} }, "opts.endpoints[1] must be an endpoint name or a table with a name" },
        } do
            it("raises: " .. c[2], function()
                assert.has_error(function() util.names(c[1], "to_user") end, "signalr.to_user: " .. c[2])
            end)
        end
    end)

    describe("one_endpoint()", function()
        it("a client of one endpoint answers to the name \"\" only", function()
            assert.is_true(util.one_endpoint({ "" }, "broadcast"))
            local ok, msg, d = util.one_endpoint({ "", "eu" }, "broadcast")
            assert.is_nil(ok)
            assert.equal("signalr.broadcast: unknown endpoint 'eu' (this client has one endpoint, named \"\";"
                .. " several come with option 'endpoints')", msg)
            assert.equal("EINVAL", d.code)
            ok, msg = util.one_endpoint({}, "health")
            assert.is_nil(ok)
            assert.equal("signalr.health: opts.endpoints names no endpoint", msg)
        end)
    end)

    it("bare() drops the method prefix", function()
        assert.equal("HTTP 503 x", util.bare("signalr.to_user: HTTP 503 x"))
        assert.equal("no prefix", util.bare("no prefix"))
    end)

    it("shallow() copies one level", function()
        local inner = {}
        local t = { a = 1, b = inner }
        local c = util.shallow(t)
        assert.are_not.equal(t, c)
        assert.equal(inner, c.b)
    end)

    it("on_collect() runs its function when the value is collected", function()
        local ran = false
        local guard = util.on_collect(function() ran = true end)
        assert.truthy(guard)
        guard = nil -- luacheck: ignore 311
        collectgarbage()
        collectgarbage()
        assert.is_true(ran)
    end)

    it("in_nginx() is false here", function()
        assert.is_false(util.in_nginx())
    end)
end)
