-- The examples run for real: the 60 Hz game loop against the emulator,
-- also while the service stalls.
local env = require "helpers.env"

describe("examples/game_loop.lua", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)

    local function run()
        local p = io.popen(env.CLEAN .. "AzureSignalRConnectionString='" .. emu.cs .. "' lua5.4 "
            .. env.root .. "/examples/game_loop.lua 1 2>&1")
        local out = p:read("*a")
        p:close()
        return out
    end

    it("sends every tick without failures and within the tick budget", function()
        local out = run()
        assert.truthy(out:find("60 ticks at 60 Hz, 180 sends (0 failed)", 1, true), out)
        local p99 = tonumber(out:match("p99 ([%d.]+) ms"))
        assert.is_true(p99 < 16.7, out)
    end)

    it("does not stall ticks while the service stalls", function()
        emu:fault { mode = "stall", ms = 300, count = 20 }
        local out = run()
        print("\n  " .. out:gsub("\n$", ""))
        local max = tonumber(out:match("max ([%d.]+) ms"))
        assert.is_true(max < 16.7, out)
        assert.truthy(out:find("(0 failed)", 1, true), out)
    end)
end)
