-- A serverless upstream in plain Lua (no nginx) for
-- spec/e2e/upstream_auth_spec.lua: lua-http's server answering with
-- signalr.upstream.dispatch, checking the service's bearer token against
-- the JWKS, issuer and audience in the JSON file AUTH (read at the first
-- request).
-- Usage: lua5.4 upstream_app.lua AUTH LOG; prints "port N" once
-- listening, writes one line per handled event to LOG.
if not pcall(require, "http.server") then
    -- Debian packages lua-http for Lua 5.1-5.3; its modules run under 5.4
    for _, v in ipairs { "5.3", "5.2", "5.1" } do
        package.path = package.path .. ";/usr/share/lua/" .. v .. "/?.lua;/usr/share/lua/" .. v .. "/?/init.lua"
    end
end
local http_server = require "http.server"
local http_headers = require "http.headers"
local cjson = require "cjson"
local upstream = require "signalr.upstream"

local log = assert(io.open(arg[2], "a"))
local function note(...)
    log:write(table.concat({ ... }, " "), "\n")
    log:flush()
end

-- the settings are read at the first request (the emulator whose keys
-- they hold starts after this app)
local spec = {
    hubs = { chat = {
        connected = function(ev) note("connected", ev.connection_id, ev.auth.sub) end,
        disconnected = function(ev) note("disconnected", ev.connection_id) end,
        messages = { echo = function(ev, x) note("echo", ev.connection_id) return x end },
    } },
}

local server = assert(http_server.listen {
    host = "127.0.0.1", port = 0,
    onstream = function(_, stream)
        if not spec.auth then
            local f = assert(io.open(arg[1], "rb"))
            local conf = cjson.decode(f:read("*a"))
            f:close()
            spec.auth = { issuer = conf.issuer, audience = conf.audience, jwks = conf.jwks }
        end
        local req = stream:get_headers()
        local headers = {}
        for k, v in req:each() do headers[k] = v end
        local body = stream:get_body_as_string(10) or ""
        local status, out, ctype, why = upstream.dispatch(spec, headers, body)
        if why then note("refused", status, why) end
        local res = http_headers.new()
        res:append(":status", tostring(status))
        if ctype then res:append("content-type", ctype) end
        if status == 401 then res:append("www-authenticate", 'Bearer error="invalid_token"') end
        stream:write_headers(res, out == "")
        if out ~= "" then stream:write_chunk(out, true) end
    end,
})
assert(server:listen())
local _, _, port = server:localname()
io.stdout:write("port ", port, "\n")
io.stdout:flush()
assert(server:loop())
