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

-- make demo-server: examples/game_server.sh starts the emulator (Default
-- mode), the game server and two real JS clients (JSON, MessagePack).
describe("examples/game_server.lua (make demo-server)", function()
    local cjson = require "cjson"

    local function demo(loop)
        local p = io.popen(env.CLEAN .. "SIGNALR_BUILD='" .. (os.getenv("SIGNALR_BUILD") or env.root .. "/build")
            .. "' bash " .. env.root .. "/examples/game_server.sh " .. (loop or "") .. " 4 2>&1")
        local out = p:read("*a")
        local ok = p:close()
        return ok, out
    end

    local function pos(text, name)
        local x, y = text:match(name .. " %(([-%d.e]+), ([-%d.e]+)%)")
        return tonumber(x), tonumber(y)
    end

    for _, loop in ipairs { "", "--luv" } do
        it("two clients join a room, move, and see every tick's state (" .. (loop == "" and "poll" or "luv")
            .. " loop)", function()
            local ok, out = demo(loop)
            print("\n" .. out)
            assert.is_true(ok, out)
            assert.truthy(out:find("== done", 1, true), out)
            local moves = { alice = { 1, 0 }, bob = { 0, 0.5 } }
            for name in pairs(moves) do
                -- Join's answer: the room's state, with this player in it
                local answer = assert(out:match("\n   " .. name .. "\tJoin%([^\n]-%) %-> ([^\n]+)"), out)
                answer = cjson.decode(answer)
                assert.equal("arena", answer.room)
                local me
                for _, p in ipairs(answer.players) do if p.name == name then me = p end end
                assert.truthy(me, out)
                -- a bad move invoked gets the hub error
                assert.truthy(out:find(name .. "\tinvoke Move(2, 0) -> error: An unexpected error occurred"
                    .. " invoking 'Move' on the server. HubException: Move(dx, dy): numbers from -1 to 1",
                    1, true), out)
                -- state ticks, most with both players in them
                local ticks, both = out:match("\n   " .. name
                    .. "\tsaw (%d+) state ticks %([^)]*%), both players in (%d+)")
                assert.truthy(ticks, out)
                assert.is_true(tonumber(both) >= 20, out)
                -- the last state: both players; the five good moves applied, the bad ones not
                local last = assert(out:match("\n   " .. name .. "\tlast state: ([^\n]+)"), out)
                for who in pairs(moves) do assert.truthy(pos(last, who), last) end
                local x, y = pos(last, name)
                assert.equal(me.x + 5 * moves[name][1], x)
                assert.equal(me.y + 5 * moves[name][2], y)
            end
            -- the server saw both come and go, and every state send went out
            assert.truthy(out:find("game_server: alice joined arena", 1, true), out)
            assert.truthy(out:find("game_server: bob left arena", 1, true), out)
            assert.truthy(out:find("4 rejected, 0 state sends failed", 1, true), out)
        end)
    end
end)
