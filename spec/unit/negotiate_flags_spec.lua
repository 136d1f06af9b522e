-- negotiate's diagnostic and detailed_errors: written into the client
-- token as the service SDK writes them ("asrs.s.dc":"true",
-- "asrs.s.derror":"True"), in every mode; absent unless asked for.
local signalr = require "signalr"
local core = require "signalr.core"
local cjson = require "cjson"

local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
local CS = "Endpoint=http://localhost;Port=1;AccessKey=" .. KEY .. ";Version=1.0;"

local function claims(n)
    local payload = assert(core.jwt_verify(n.accessToken, KEY))
    return cjson.decode(payload)
end

describe("negotiate's diagnostic and detailed_errors", function()
    for _, extra in ipairs { {}, { async = true }, { endpoints = { { connection_string = CS, name = "a" } } } } do
        local what = extra.async and "async" or extra.endpoints and "several endpoints" or "blocking"
        it("writes the SDK's claims (" .. what .. ")", function()
            local o = { connection_string = not extra.endpoints and CS or nil }
            for k, v in pairs(extra) do o[k] = v end
            local c = assert(signalr.new(o))
            local h = c:hub("chat")
            local plain = claims(assert(h:negotiate { user_id = "u" }))
            assert.is_nil(plain["asrs.s.dc"])
            assert.is_nil(plain["asrs.s.derror"])
            local both = claims(assert(h:negotiate { user_id = "u", diagnostic = true,
                                                     detailed_errors = true }))
            assert.equal("true", both["asrs.s.dc"])
            assert.equal("True", both["asrs.s.derror"])
            assert.equal("u", both["asrs.s.uid"])
            local one = claims(assert(h:negotiate { detailed_errors = true, diagnostic = false }))
            assert.is_nil(one["asrs.s.dc"])
            assert.equal("True", one["asrs.s.derror"])
            c:close()
        end)
    end

    it("a wrong type raises; a claim repeating a flag's is EINVAL", function()
        local h = assert(signalr.new(CS)):hub("chat")
        assert.has_error(function() h:negotiate { diagnostic = "yes" } end,
            "signalr.negotiate: opts.diagnostic must be a boolean, got string")
        assert.has_error(function() h:negotiate { detailed_errors = 1 } end,
            "signalr.negotiate: opts.detailed_errors must be a boolean, got number")
        local r, msg, d = h:negotiate { diagnostic = true, claims = { ["asrs.s.dc"] = "false" } }
        assert.is_nil(r)
        assert.equal("signalr.negotiate: claim 'asrs.s.dc' is set by negotiate from diagnostic", msg)
        assert.equal("EINVAL", d.code)
    end)
end)
