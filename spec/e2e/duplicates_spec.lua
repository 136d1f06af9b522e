-- Nothing is sent twice behind the caller's back: a send whose reused
-- keep-alive connection is reset after the service read (and delivered)
-- it fails with EHTTP and details.sent = true, and a real client receives
-- it exactly once; blocking and async libcurl alike.  (Cosockets: the same
-- case in spec/nginx.)
local signalr = require "signalr"
local env = require "helpers.env"

describe("no duplicate delivery", function()
    local emu, pool
    setup(function()
        emu = env.emulator()
        pool = env.clients(emu)
        local hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
        assert(pool:connect("c", assert(hub:negotiate())))
    end)
    teardown(function()
        pool:quit()
        emu:stop()
    end)

    local function received(tag) return pool:count("c", tag) end

    for _, async in ipairs { false, true } do
        local mode = async and "async" or "blocking"
        local function send(client, hub, tag)
            local r, msg, details = hub:broadcast("newMessage", { tag })
            if async and r then
                assert(client:flush(5))
                return r.result, r.error, r.details
            end
            return r, msg, details
        end
        for _, retries in ipairs { 0, 3 } do
            it(mode .. ", retries = " .. retries .. ": reset after delivery", function()
                local client = assert(signalr.new { connection_string = emu.cs, retries = retries,
                    retry_delay = 0.01, async = async })
                local hub = assert(client:hub("chat"))
                local warm = mode .. retries .. "-warm"
                assert.is_true(send(client, hub, warm)) -- a pooled connection now
                local stats = emu:stats()
                emu:clear()
                emu:fault { mode = "reset_after" }
                local tag = mode .. retries .. "-x"
                local ok, msg, details = send(client, hub, tag)
                assert.is_nil(ok)
                assert.equal("EHTTP", details.code, msg)
                assert.is_true(details.sent)
                assert.truthy(msg:find("may have been delivered", 1, true), msg)
                assert.equal(1, #emu:requests())
                -- the connection was reused (the case libcurl retries itself)
                assert.equal(stats.rest_connections, emu:stats().rest_connections)
                -- a later send still works, and each arrives exactly once
                assert.is_true(send(client, hub, tag .. "-after"))
                env.wait(function() return received(tag .. "-after") == 1 end, 10, "the later send")
                assert.equal(1, received(tag))
                assert.equal(1, received(warm))
                client:close()
            end)
        end
    end

    it("an idempotent call is still retried after such a reset", function()
        local client = assert(signalr.new { connection_string = emu.cs, retries = 2, retry_delay = 0.01 })
        local hub = assert(client:hub("chat"))
        assert.is_true(hub:add_user_to_group("u", "g"))
        emu:clear()
        emu:fault { mode = "reset_after" }
        assert.is_true(hub:user_in_group("u", "g"))
        assert.equal(2, #emu:requests())
    end)
end)
