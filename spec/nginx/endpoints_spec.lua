-- Several endpoints inside a real nginx: a handler's broadcast goes to
-- every endpoint in parallel light threads; in the phases that refuse
-- light threads (here the log phase) the endpoints are called one after
-- the other instead of raising: REST answers EPHASE (no cosockets there),
-- persistent mode sends (it only touches memory).
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local signalr = require "signalr"
local cjson = require "cjson"
local sh = nginx.sh

describe("several endpoints inside nginx", function()
    local n, emus, pools = nil, {}, {}
    setup(function()
        local cs_file = os.tmpname()
        n = nginx.start_conf("endpoints.conf", { ENDPOINTS_CS_FILE = cs_file }, function(x)
            return sh("curl -s -o /dev/null -w '%{http_code}' " .. x.base .. "/ready") == "200"
        end)
        emus[1], emus[2] = env.emulator(), env.emulator()
        nginx.write_cs(cs_file, emus[1].cs .. "\n" .. emus[2].cs)
        for i, emu in ipairs(emus) do
            pools[i] = env.clients(emu)
            local hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
            assert(pools[i]:connect("c", assert(hub:negotiate { user_id = "u" .. i }), nil, 4000))
        end
    end)
    teardown(function()
        for _, p in ipairs(pools) do p:quit() end
        -- nginx first: its persistent connections would reconnect to a
        -- service gone first (and nginx log the refused connects)
        local ok, err = pcall(nginx.stop_clean, n)
        for _, e in ipairs(emus) do e:stop() end
        assert(ok, err)
    end)

    local function send(mode, tag)
        local r = cjson.decode(sh("curl -s '" .. n.base .. "/send?mode=" .. mode .. "&tag=" .. tag .. "'"))
        local logged = env.wait(function()
            local out = sh("curl -s '" .. n.base .. "/result?tag=" .. tag .. "'")
            return out:match("^null") == nil and cjson.decode(out)
        end, 10, "the log phase's answer")
        return r, logged
    end

    local function reached(tag, count)
        env.wait(function() return pools[1]:count("c", tag) == count and pools[2]:count("c", tag) == count end,
            10, tag .. " on both endpoints")
    end

    it("REST: the handler's broadcast reaches both; the log phase's answers EPHASE, no raise", function()
        local r, logged = send("transient", "rest")
        assert.is_nil(r.raised)
        assert.is_true(r.answered)
        reached("rest-content", 1)
        assert.is_nil(logged.raised)
        assert.is_false(logged.answered)
        assert.equal("EPHASE", logged.code)
        assert.matches("cosockets are not available", logged.msg, 1, true)
        assert.equal(0, pools[1]:count("c", "rest-log") + pools[2]:count("c", "rest-log"))
    end)

    it("REST from server_rewrite_by_lua: light threads and cosockets work there, both endpoints get it",
            function()
        sh("curl -s '" .. n.base .. "/send?mode=transient&tag=srw&sr=1' > /dev/null")
        local out = sh("curl -s '" .. n.base .. "/result?tag=srw-sr'")
        local r = cjson.decode(out)
        assert.is_nil(r.raised)
        assert.is_nil(r.code)
        assert.is_true(r.answered)
        reached("srw-server_rewrite", 1)
    end)

    it("persistent mode: both phases' broadcasts reach both endpoints", function()
        local r, logged = send("persistent", "pers")
        assert.is_nil(r.raised)
        assert.is_true(r.answered)
        assert.is_nil(logged.raised)
        assert.is_true(logged.answered)
        reached("pers-content", 1)
        reached("pers-log", 1)
    end)
end)
