-- Every row of the public API against a real HTTP server (the bundled
-- emulator, started per file), for both route families: method, exact path
-- and query, headers, the JWT (signature, aud, exp) and the JSON body.
local signalr = require "signalr"
local env = require "helpers.env"

local rows = require "helpers.rows"
local unpack = table.unpack or unpack

describe("hub operations over HTTP", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop(); if os.getenv("SHOWLOG") then print(env.read(emu.dir .. "/err")) end end)

    for _, version in ipairs { "2022-06-01", "v1" } do
        describe("api_version " .. version, function()
            local hub, created
            setup(function()
                created = os.time()
                local client = assert(signalr.new { connection_string = emu.cs,
                    api_version = version, retries = 0 })
                hub = assert(client:hub("Chat"))
            end)

            for _, row in ipairs(rows.ROWS) do
                local want = row[4]
                if version == "v1" then want = row[5] end
                if want == false then
                    it(row[1] .. " fails clearly without sending", function()
                        emu:clear()
                        local ok, msg, details = hub[row[2]](hub, unpack(row[3]))
                        assert.is_nil(ok)
                        assert.equal("EUNSUPPORTED", details.code)
                        assert.truthy(msg:find("2022-06-01", 1, true), msg)
                        assert.equal(0, #emu:requests())
                    end)
                else
                    it(row[1], function()
                        emu:clear()
                        rows.check(emu, want, created, hub[row[2]](hub, unpack(row[3])))
                    end)
                end
            end

            it("health", function()
                emu:clear()
                assert.is_true(hub._client:health())
                local req = emu:last_request()
                assert.equal(version == "v1" and "/api/v1/health" or "/api/health?api-version=2022-06-01", req.path)
                assert.is_nil(req.headers.authorization)
            end)
        end)
    end

    for _, f in ipairs(rows.FAULTS) do
        it(f[1], function()
            rows.fault_case(emu, f, function(opts, method, args)
                local hub = assert(assert(signalr.new(opts)):hub("chat"))
                return hub[method](hub, unpack(args))
            end)
        end)
    end

    it("keeps one connection alive across calls", function()
        local client = assert(signalr.new(emu.cs))
        local hub = client:hub("chat")
        local before = emu:stats().rest_connections
        for _ = 1, 20 do assert(hub:broadcast("newMessage", { 1 })) end
        assert.equal(before + 1, emu:stats().rest_connections)
    end)

    it("reuses the signed token for one audience", function()
        local hub = assert(signalr.new(emu.cs)):hub("chat")
        emu:clear()
        assert(hub:broadcast("a"))
        assert(hub:broadcast("b"))
        local r = emu:requests()
        assert.equal(r[1].headers.authorization, r[2].headers.authorization)
    end)
end)
