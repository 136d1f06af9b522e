-- The bad-input table (spec/helpers/bad_input.lua) over a blocking and an
-- async client: each row gets exactly its outcome, and nothing reaches the
-- emulator.
local signalr = require "signalr"
local env = require "helpers.env"
local bad = require "helpers.bad_input"

describe("the bad-input table", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)

    for _, mode in ipairs { "blocking", "async" } do
        describe(mode, function()
            local client, hub
            setup(function()
                client = assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01",
                    async = mode == "async" })
                hub = assert(client:hub("chat"))
            end)
            teardown(function() client:close() end)
            for _, row in ipairs(bad.ROWS) do
                it(row[1] .. ": " .. row[3], function()
                    emu:clear()
                    if row[3] == "raise" then
                        local ok, err = pcall(row[2], hub, signalr)
                        assert.is_false(ok)
                        assert.truthy(tostring(err):find(row[4], 1, true), tostring(err))
                    else
                        local ok, msg, details = row[2](hub, signalr)
                        assert.is_nil(ok, "expected a failure")
                        assert.equal(row[3], details.code, msg)
                        assert.truthy(msg:find(row[4], 1, true), msg)
                        assert.truthy(msg:match("^signalr%.[%w_]+: "), msg)
                    end
                    if mode == "async" then client:step() end
                    assert.equal(0, #emu:requests(), "something reached the network")
                end)
            end
        end)
    end
end)
