-- signalr.transport: the choice of transport for a client's options, the
-- checks every transport of one endpoint makes before its own work
-- (signalr.transport.base), and the blocking transport's fan-out of
-- multi-target sends.  No service: a refused port.
local core = require "signalr.core"
local options = require "signalr.options"
local transport = require "signalr.transport"
local curl = require "signalr.transport.curl"
local async = require "signalr.transport.async"
local persistent = require "signalr.transport.persistent"

local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
local CS = "Endpoint=http://127.0.0.1;Port=1;AccessKey=" .. KEY .. ";Version=1.0;"

local function make(extra)
    local o = { connection_string = CS, retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return transport.new(options.fill(o), nil, 1)
end

describe("signalr.transport", function()
    describe("new()", function()
        it("blocking by default, async on request, persistent over a blocking one", function()
            local t = assert(make())
            assert.equal(curl.Curl, getmetatable(t))
            assert.is_nil(t.loop)
            t:close()
            t = assert(make { async = true })
            assert.equal(async.Async, getmetatable(t))
            assert.is_true(t.loop)
            t:close()
            t = assert(make { mode = "persistent" })
            assert.equal(persistent.Persistent, getmetatable(t))
            assert.equal(curl.Curl, getmetatable(t.rest))
            assert.is_true(t.loop)
            t:close()
        end)

        it("a bad connection string: nil, message, details", function()
            local t, msg, d = transport.new(options.fill { connection_string = "Endpoint=x" }, nil, 1)
            assert.is_nil(t)
            assert.matches("^signalr%.new: ", msg)
            assert.equal("ECONNSTR", d.code)
        end)

        for _, c in ipairs {
            { { transport = "cosocket" }, "signalr.new: transport 'cosocket' needs nginx (ngx.socket)" },
            { { transport = "cosocket", async = true }, "signalr.new: the async mode drives libcurl from your"
              .. " own loop; inside nginx calls are already non-blocking (leave 'async' off there)" },
            { { connection_string = "Endpoint=https://x;AuthType=azure.msi", shared_dict = "t" },
              "signalr.new: option 'shared_dict' names an nginx lua_shared_dict: it is only for clients inside nginx" },
        } do
            it("raises where the options cannot work: " .. c[2]:sub(14, 60), function()
                assert.has_error(function() make(c[1]) end, c[2])
            end)
        end
    end)

    describe("the checks of every transport of one endpoint", function()
        for _, mode in ipairs { {}, { async = true }, { mode = "persistent" } } do
            local name = mode.async and "async" or mode.mode or "blocking"
            it(name .. ": the endpoint is named \"\"; negotiate signs; after close nothing is sent", function()
                local t = assert(make(mode))
                local ok, msg, d = t:call("broadcast", { hub = "h", target = "m", arguments = "[]" },
                    "broadcast", { "eu" })
                assert.is_nil(ok)
                assert.equal("EINVAL", d.code)
                assert.matches("unknown endpoint 'eu'", msg)
                assert.same({ { name = "", type = "primary", online = true, endpoint = "http://127.0.0.1:1",
                                client_endpoint = "http://127.0.0.1:1", server_endpoint = "http://127.0.0.1:1" } },
                            t:endpoints())
                assert.is_true(t:describe().has_key)
                assert.equal("signalr.client (http://127.0.0.1:1)", tostring(t))
                local n = assert(t:call("negotiate", { hub = "h", user = "u" }, "negotiate", { "" }))
                assert.equal("http://127.0.0.1:1/client/?hub=h", n.url)
                assert.truthy(core.jwt_verify(n.accessToken, KEY))
                t:close()
                ok, msg, d = t:call("to_user", { hub = "h", user = "u", target = "m" }, "to_user", { "" })
                assert.is_nil(ok)
                assert.equal("signalr.to_user: the client is closed (nothing was sent)", msg)
                assert.same({ code = "ECANCELED", sent = false }, d)
            end)
        end
    end)

    describe("blocking: multi-target sends", function()
        it("one REST send per target; every one is tried, the failures named", function()
            local t = assert(make())
            local ok, msg, d = t:call("to_users", { hub = "h", users = { "a", "b" }, target = "m", arguments = "[]" },
                "to_users")
            assert.is_nil(ok)
            assert.equal("ECONNECT", d.code)
            assert.equal(0, d.delivered)
            assert.same({ "a", "b" }, { d.failed[1].id, d.failed[2].id })
            assert.matches("^signalr%.to_users: 0 of 2 sends went; 2 failed %(first: signalr%.to_users: could not", msg)
        end)
        it("bad input stops at once", function()
            local t = assert(make())
            local ok, msg, d = t:call("to_groups", { hub = "h", groups = { "g", "" }, target = "m" }, "to_groups")
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.equal("signalr.to_groups: group name is empty", msg)
        end)
    end)

    it("confirm: a blocking send that answered true was accepted already", function()
        assert.is_true(assert(make()):confirm())
    end)
end)
