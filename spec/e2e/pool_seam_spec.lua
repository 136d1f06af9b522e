-- The seam a hub server builds on (signalr.transport.persistent.pool)
-- against the emulator in Default mode: the pool opens Default server
-- connections (they carry clients), hands what it does not consume to
-- on_message with the connection it came on (a client's OpenConnection),
-- writes a frame on that connection, and reports a lost connection to
-- on_lost before it connects again.  Driven through the event-loop
-- contract (poll, timeout) alone.
local env = require "helpers.env"
local cjson = require "cjson"
local core = require "signalr.core"
local signalr = require "signalr"
local options = require "signalr.options"
local pool_mod = require "signalr.transport.persistent.pool"

local SP = core.sp

describe("the server-connection pool (the hub server's seam)", function()
    local emu, clients, pool
    local got, lost = {}, {}
    setup(function()
        emu = env.emulator("--service-mode default")
        clients = env.clients(emu)
        local o = options.fill { connection_string = emu.cs, mode = "persistent" }
        pool = pool_mod.new(o, {
            handle = assert(core.client(emu.cs, o)), type = SP.DEFAULT_CONNECTION,
            on_message = function(c, m) got[#got + 1] = { conn = c, msg = m } end,
            on_lost = function(c, msg, d) lost[#lost + 1] = { conn = c, msg = msg, details = d } end,
        })
    end)
    teardown(function()
        if pool then pool:close(0) end
        clients:quit()
        emu:stop()
    end)

    local function wait_for(what, fn)
        return env.wait(function()
            pool:poll(math.min(0.05, pool:timeout() or 0.05))
            return fn()
        end, 10, what)
    end

    local function servers()
        local status, body = emu:http("GET", "/_emulator/servers")
        assert.equal(200, status)
        return cjson.decode(body)
    end

    it("opens Default server connections: the service counts them as carrying clients", function()
        pool:open("chat")
        wait_for("the connection to open", function() return pool:status().chat.connections[1].state == "open" end)
        local list = servers()
        assert.equal(1, #list)
        assert.equal(0, list[1].type)
        assert.equal("chat", list[1].hub)
    end)

    it("hands a client's OpenConnection to on_message, with the connection that carries it", function()
        local nego = assert(signalr.new(emu.cs):hub("chat"):negotiate { user_id = "u1" })
        -- the client waits for a hub server's handshake answer; this one
        -- only looks at what arrives
        clients:send { cmd = "connect", name = "c1", url = nego.url, accessToken = nego.accessToken,
                       targets = { "newMessage" } }
        local open = wait_for("an OpenConnection", function()
            for _, g in ipairs(got) do
                if g.msg.type == SP.OPEN_CONNECTION then return g end
            end
        end)
        assert.equal("open", open.conn.state)
        -- a frame on that very connection
        assert.is_true(pool:write(open.conn, core.sp_ping(), "reply"))
        assert.is_true(pool:flush(5))
        assert.equal(0, #lost)
    end)

    it("reports a lost connection to on_lost, then connects again", function()
        local status = emu:http("DELETE", "/_emulator/servers")
        assert.truthy(status == 200 or status == 204, status)
        wait_for("on_lost", function() return #lost > 0 end)
        assert.equal("ECONNECT", lost[1].details.code)
        wait_for("the connection to open again", function()
            return pool:status().chat.connections[1].state == "open"
        end)
        assert.equal(1, #lost)
    end)
end)
