--- Upstream (serverless event handlers) for the emulator: URL templates
-- matched in order (the first match wins, as the service's settings), and
-- the POST of one event with the X-ASRS-* headers and signature.
--
-- A template is `URL[;hub=H1,H2][;category=C][;event=E1,E2]`; the URL may
-- hold `{hub}`, `{category}` and `{event}`, replaced by the escaped
-- value; a missing rule, or `*`, matches anything.
local request = require "http.request"
local core = require "signalr.core"

local _M = {}

local function rule(list)
    if not list or list == "" then return nil end
    local set = {}
    for item in list:gmatch("[^,]+") do
        item = item:match("^%s*(.-)%s*$")
        if item == "*" then return nil end
        set[item] = true
    end
    return set
end

--- Parse a --upstream value: the template, or nil and why.  Besides the
-- rules, `auth=ManagedIdentity;resource=<audience>` (the service's
-- upstream `auth` setting) sends each request a bearer token of the
-- Microsoft Entra ID stand-in, for that audience.
function _M.parse(spec)
    local url, rest = spec:match("^([^;]+)(.*)$")
    if not url or not url:match("^https?://[^/]+") then
        return nil, "expected an http(s) URL template, then ;hub=...;category=...;event=..."
    end
    local t = { url = url }
    for k, v in rest:gmatch(";%s*([%w]+)%s*=%s*([^;]*)") do
        if k == "auth" then
            v = v:match("^%s*(.-)%s*$")
            if v ~= "ManagedIdentity" and v ~= "None" then
                return nil, "auth must be ManagedIdentity or None, not '" .. v .. "'"
            end
            t.auth = v == "ManagedIdentity" or nil
        elseif k == "resource" then
            t.resource = v:match("^%s*(.-)%s*$")
        elseif k ~= "hub" and k ~= "category" and k ~= "event" then
            return nil, "unknown rule '" .. k .. "' (hub, category, event, auth, resource)"
        else
            t[k] = rule(v)
        end
    end
    if t.auth and (not t.resource or t.resource == "") then
        return nil, "auth=ManagedIdentity needs resource=<the token's audience>"
    end
    if t.resource and not t.auth then
        return nil, "resource=... needs auth=ManagedIdentity"
    end
    return t
end

--- The first template that matches, or nil.
function _M.match(templates, hub, category, event)
    for _, t in ipairs(templates or {}) do
        if (not t.hub or t.hub[hub]) and (not t.category or t.category[category])
                and (not t.event or t.event[event]) then
            return t
        end
    end
end

local function url_of(t, hub, category, event)
    local function esc(v) return core.url_encode(v) end
    return (t.url:gsub("{hub}", function() return esc(hub) end)
        :gsub("{category}", function() return esc(category) end)
        :gsub("{event}", function() return esc(event) end))
end

-- "type: value, type: value" (arrays give one item per value)
local function claims_header(claims)
    local parts = {}
    for k, v in pairs(claims or {}) do
        if type(v) == "table" then
            for _, x in ipairs(v) do parts[#parts + 1] = k .. ": " .. tostring(x) end
        else
            parts[#parts + 1] = k .. ": " .. tostring(v)
        end
    end
    table.sort(parts)
    return table.concat(parts, ", ")
end

--- POST one event for connection c (`id`, `hub`, `user`, `claims`,
-- `query`) to template t.  Returns status, body (status 0 and the error
-- text when the request failed).
function _M.post(emu, t, c, category, event, body, content_type)
    local url = url_of(t, c.hub, category, event)
    local req = request.new_from_uri(url)
    local h = req.headers
    h:upsert(":method", "POST")
    h:upsert("content-type", content_type)
    h:upsert("x-asrs-connection-id", c.id)
    h:upsert("x-asrs-hub", c.hub)
    h:upsert("x-asrs-category", category)
    h:upsert("x-asrs-event", event)
    -- one item per key the service holds (here: its one key)
    h:upsert("x-asrs-signature", core.upstream_sign(emu.key, c.id))
    if c.user then h:upsert("x-asrs-user-id", c.user) end
    local claims = claims_header(c.claims)
    if claims ~= "" then h:upsert("x-asrs-user-claims", claims) end
    if c.query then h:upsert("x-asrs-client-query", c.query) end
    if t.auth then
        -- the service's managed identity asks for a token for the
        -- template's resource (a fresh one each time: the stand-in signs
        -- locally)
        h:upsert("authorization", "Bearer " .. emu.entra:upstream_token(t.resource))
    end
    req:set_body(body)
    local headers, stream = req:go(emu.upstream_timeout or 30)
    if not headers then
        emu:log("warn", "upstream %s: %s", url, tostring(stream))
        return 0, tostring(stream)
    end
    local status = tonumber(headers:get(":status")) or 0
    local data = stream:get_body_chars(16 * 1024 * 1024 + 1, emu.upstream_timeout or 30) or ""
    stream:shutdown()
    emu:log("info", "upstream %s/%s for %s: %d", category, event, c.id, status)
    emu.stats.upstream = (emu.stats.upstream or 0) + 1
    return status, data
end

return _M
