-- Ids that become path segments: "." and ".." are refused before anything
-- is sent (libcurl, proxies and servers fold them: users/../:send is the
-- broadcast route), and ids that merely contain dots reach the service as
-- sent.  Every operation with an id in its path, blocking and async,
-- checked against the path the emulator received (nginx: spec/nginx).
local signalr = require "signalr"
local env = require "helpers.env"
local seg = require "helpers.path_segments"

local unpack = table.unpack or unpack

-- the outcome of a call, whether it answered at once or (async) later
local function outcome(client, ok, msg, details)
    if type(ok) == "table" and ok.done ~= nil then
        client:flush(10)
        return ok.ok, ok.message, ok.details
    end
    return ok, msg, details
end

for _, mode in ipairs { "blocking", "async" } do
    describe("ids as path segments (" .. mode .. ")", function()
        local emu, client, hub
        setup(function()
            emu = env.emulator()
            client = assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01",
                                          async = mode == "async" })
            hub = assert(client:hub("chat"))
        end)
        teardown(function()
            client:close()
            emu:stop()
        end)

        for _, c in ipairs(seg.CALLS) do
            local name, what = c[1], c[2]
            it(name .. ": \".\" and \"..\" as the " .. what .. " are EINVAL and nothing is sent", function()
                for _, v in ipairs(seg.DOTS) do
                    emu:clear()
                    local ok, msg, details = outcome(client, hub[name](hub, unpack(seg.args(c, v))))
                    assert.is_nil(ok)
                    assert.equal(seg.message(c, v), msg:match("^[%w_.]+: (.*)$") or msg)
                    assert.equal("EINVAL", details.code)
                    assert.equal(0, #emu:requests(), "a request reached the service")
                end
            end)
            -- async mode answers EUNSUPPORTED for these two (they need a
            -- reply body); their dot segments are still refused first
            if mode == "blocking" or (name ~= "group_connections" and name ~= "invoke") then
                it(name .. ": a " .. what .. " that contains dots reaches the service as it is", function()
                    for _, v in ipairs(seg.DOTTED) do
                        emu:clear()
                        outcome(client, hub[name](hub, unpack(seg.args(c, v))))
                        assert.is_nil(seg.check_received(emu:requests(), v))
                    end
                end)
            end
        end
    end)
end
