-- The examples run for real: the 60 Hz game loop against the emulator,
-- also while the service stalls.
local env = require "helpers.env"

describe("examples/game_loop.lua", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)

    local function run(loop, mode)
        local p = io.popen(env.CLEAN .. "AzureSignalRConnectionString='" .. emu.cs .. "' lua5.4 "
            .. env.root .. "/examples/game_loop.lua 1 " .. (loop or "own") .. " " .. (mode or "async") .. " 2>&1")
        local out = p:read("*a")
        p:close()
        return out
    end

    for _, loop in ipairs { "own", "luv", "cqueues" } do
        it("sends every tick without failures and within the tick budget (" .. loop .. " loop)", function()
            emu:clear()
            local out = run(loop)
            print("\n  " .. out:gsub("\n$", ""))
            assert.truthy(out:find("60 ticks at 60 Hz (" .. loop .. " loop), 180 sends (0 failed)",
                1, true), out)
            local p99 = tonumber(out:match("p99 ([%d.]+) ms"))
            assert.is_true(p99 < 16.7, out)
            -- every send reached the service (202; the group joins are 200)
            local n = 0
            for _, r in ipairs(emu:requests()) do if r.status == 202 then n = n + 1 end end
            assert.equal(180, n)
        end)
    end

    for _, loop in ipairs { "own", "luv", "cqueues" } do
        it("persistent mode: every tick over the server connection, no REST (" .. loop .. " loop)", function()
            emu:clear()
            local before = emu:stats().server_types or {}
            local out = run(loop, "persistent")
            print("\n  " .. out:gsub("\n$", ""))
            assert.truthy(out:find("60 ticks at 60 Hz (" .. loop .. " loop), 180 sends (0 failed)",
                1, true), out)
            assert.truthy(out:find("persistent", 1, true), out)
            local p99 = tonumber(out:match("p99 ([%d.]+) ms"))
            assert.is_true(p99 < 16.7, out)
            local after = emu:stats().server_types
            assert.equal(120, (after["13"] or 0) - (before["13"] or 0)) -- group sends
            assert.equal(60, (after["8"] or 0) - (before["8"] or 0))    -- user sends
            assert.equal(0, #emu:requests())
        end)
    end

    it("does not stall ticks while the service stalls", function()
        emu:fault { mode = "stall", ms = 300, count = 20 }
        local out = run()
        print("\n  " .. out:gsub("\n$", ""))
        local max = tonumber(out:match("max ([%d.]+) ms"))
        assert.is_true(max < 16.7, out)
        assert.truthy(out:find("(0 failed)", 1, true), out)
    end)
end)
