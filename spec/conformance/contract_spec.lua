-- The committed contract (spec/conformance/contract.lua) is what the
-- conformance specs judge by.  It is generated, never written by hand:
-- it must read exactly as the generator writes it, and where the official
-- swagger files are at hand (SIGNALR_SWAGGER_DIR names their folder; CI's
-- .ci/run sets it) it must be what the generator makes of them today.
local env = require "helpers.env"
local gen = require "conformance.contract_gen"
local swagger = require "helpers.swagger"

local path = swagger.contract(env.root)
local REGEN = "lua5.4 spec/conformance/contract_gen.lua \"$SIGNALR_SWAGGER_DIR\""

-- nil when equal, else where the texts part
local function first_difference(want, got)
    if want == got then return nil end
    local n, wl, gl = 0, want:gmatch("([^\n]*)\n?"), got:gmatch("([^\n]*)\n?")
    while true do
        n = n + 1
        local a, b = wl(), gl()
        if a ~= b then
            return string.format("line %d:\n  committed: %s\n  generated: %s",
                n, tostring(b), tostring(a))
        end
        if a == nil then return "they differ" end
    end
end

describe("the committed swagger contract", function()
    local text = env.read(path)

    it("is there, names its source and covers both official families", function()
        assert(text, "no " .. path)
        local c = dofile(path)
        assert.is_string(c.source)
        assert.truthy(text:find("\n%-%- Source: " .. c.source:gsub("%p", "%%%0") .. "\n"))
        local versions = {}
        for _, f in ipairs(c.files) do versions[f.version] = #f.operations end
        assert.is_true((versions.v1 or 0) > 0 and (versions["2022-06-01"] or 0) > 0)
    end)

    it("reads exactly as the generator writes it (no hand edits)", function()
        local why = first_difference(gen.render(dofile(path)), text)
        assert(not why, path .. " is not in the generator's form, " .. tostring(why)
            .. "\nregenerate it: " .. REGEN)
    end)

    it("still matches the official swagger files (SIGNALR_SWAGGER_DIR)", function()
        local dir = os.getenv("SIGNALR_SWAGGER_DIR")
        if not dir or dir == "" then
            pending("SIGNALR_SWAGGER_DIR is not set: the table is not compared with the official files")
            return
        end
        local why = first_difference(gen.generate(dir), text)
        assert(not why, "the official files in " .. dir .. " no longer give " .. path
            .. ", " .. tostring(why) .. "\nregenerate it: " .. REGEN)
    end)
end)
