-- Numbers keep their exact value on the way out: 64-bit integers (Lua
-- 5.3+), doubles that need 17 digits, the extremes.  REST bodies are read
-- back from what the emulator received (an exact decoder: core.json_decode
-- keeps int64), the signalr command's likewise, and persistent mode's
-- through a real JSON client (for the values JavaScript can hold).
local signalr = require "signalr"
local core = require "signalr.core"
local env = require "helpers.env"

local INT64 = math.type ~= nil
local VALUES = INT64 and { 9007199254740993, math.mininteger, math.maxinteger, 0.1, 1e308, 5e-324,
                           0.30000000000000004, -2.5 }
    or { 9007199254740991, -9007199254740991, 0.1, 1e308, 5e-324, 0.30000000000000004, -2.5 }

local function same_exactly(want, got)
    assert.equal(#want, #got)
    for i = 1, #want do
        assert.is_true(want[i] == got[i], "value " .. i .. ": sent " .. string.format("%.17g", want[i])
            .. ", received " .. string.format("%.17g", got[i]))
        if INT64 then assert.equal(math.type(want[i]), math.type(got[i]), "value " .. i .. "'s kind") end
    end
end

describe("exact numbers", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)

    it("REST: the body the service receives holds every number exactly", function()
        local hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
        emu:clear()
        assert.is_true(hub:broadcast("numbers", VALUES))
        local body = assert(emu:last_request().body)
        same_exactly(VALUES, assert(core.json_decode(body)).arguments)
        -- 0.1 goes as 0.1, not 0.10000000000000001
        assert.truthy(body:find("[,%[]0%.1[,%]]"), body)
    end)

    it("the signalr command sends the JSON it is given, exactly", function()
        emu:clear()
        local text = INT64 and "[9007199254740993,-9223372036854775808,0.1,1e308]"
            or "[9007199254740991,0.1,1e308]"
        local cmd = string.format("%s AzureSignalRConnectionString='%s' SIGNALR_BUILD='%s' %s/bin/signalr"
            .. " broadcast chat numbers '%s' 2>&1", env.CLEAN, emu.cs, os.getenv("SIGNALR_BUILD") or "",
            env.root, text)
        local p = io.popen(cmd)
        local out = p:read("*a")
        p:close()
        local body = assert(emu:last_request(), out).body
        assert.same(core.json_decode(text), core.json_decode(body).arguments)
    end)

    it("persistent mode: a real JSON client gets the doubles exactly", function()
        local pool = env.clients(emu)
        local rest = assert(assert(signalr.new(emu.cs)):hub("chat"))
        assert(pool:connect("n1", assert(rest:negotiate { user_id = "n" }), { "numbers" }))
        local c = assert(signalr.new { connection_string = emu.cs, mode = "persistent" })
        local hub = assert(c:hub("chat"))
        local sent = { 0.1, 1e308, 5e-324, 0.30000000000000004, 9007199254740991, -9007199254740991 }
        assert(hub:broadcast("numbers", sent))
        assert(c:flush(5))
        env.wait(function() return #pool:messages("n1") == 1 end, 10, "the message")
        local got = pool:messages("n1")[1].args
        for i = 1, #sent do assert.is_true(sent[i] == got[i], "value " .. i) end
        c:close()
        pool:quit()
    end)
end)
