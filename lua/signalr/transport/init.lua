--- The transports and the choice among them.  A client holds one
-- transport; every transport has one interface:
--
--   * `t:call(op, params, what[, names])`: one hub operation (`op` the
--     core's name, `params` its parameters, `what` the hub method for
--     messages, `names` the call's `opts.endpoints`): a result, a request
--     object (queued), or nil, message, details;
--   * the event-loop contract (signalr.loop) where `t.loop` is true:
--     `poll`, `pending`, `flush`, `fds`, `pollfd`, `timeout`;
--   * `confirm`, `close`, `health`, `endpoints`, `describe`, `list`,
--     `status`;
--   * optional shortcuts for a send's common case, each answering false
--     where the hub must take `call`: `send_data(op, hub, target, text,
--     id, excluded)`, `send_args(op, hub, target, args, id)`, and
--     `sender(hub, op)`, a function `send(target, args[, id])` the hub
--     keeps for its broadcast, to_user and to_group (persistent mode).
--
-- Which one: `signalr.transport.curl` (blocking libcurl, the default),
-- `signalr.transport.ngx` (cosockets, the default inside nginx),
-- `signalr.transport.async` (`async = true`: libcurl multi, a queue),
-- `signalr.transport.persistent` (`mode = "persistent"`: server
-- connections, over either blocking transport for what stays REST), and
-- `signalr.endpoints` (several endpoints: a transport of these).
-- Transports get what they need from above as callbacks when they are
-- made (an Entra ID token, a wake-up for an event loop); none reaches
-- back into the client.
-- @module signalr.transport
local core = require "signalr.core"
local auth_mod = require "signalr.auth"
local util = require "signalr.util"
local curl = require "signalr.transport.curl"

local error, pcall = error, pcall

local _M = {}

--- The transport of one endpoint for a client's options.
-- @tparam table o the options, checked and with defaults (signalr.options)
-- @tparam[opt] function wake called when an async call is queued
-- @tparam number level where an error points (as error's level, from the caller)
-- @tparam[opt] table seam persistent mode for a hub server (signalr.server):
--   `type`, `on_message`, `on_lost` for the pool
-- @treturn[1] table the transport
-- @treturn[2] nil, message, details (`ECONNSTR`, `EINVAL`)
-- @raise on options that cannot work here (cosockets outside nginx, ...)
function _M.new(o, wake, level, seam)
    level = level + 1
    local handle, msg, details = core.client(o.connection_string, o)
    if not handle then
        return nil, "signalr.new: " .. msg, details
    end
    local function raise(text)
        handle:close()
        error(text, level + 1)
    end
    local info = handle:info()
    -- inside nginx, requests go over cosockets: never block the worker
    local in_nginx = util.in_nginx()
    if o.shared_dict and not in_nginx then
        raise("signalr.new: option 'shared_dict' names an nginx lua_shared_dict:"
            .. " it is only for clients inside nginx")
    end
    -- Entra ID: a token provider, or the connection string's credential
    local auth
    if o.token_provider then
        auth = auth_mod.new(o.token_provider, o)
    elseif not info.has_key then
        local ok, cred = pcall(auth_mod.credential, handle, info, o)
        if not ok then raise(cred) end
        ok, auth = pcall(auth_mod.new, cred, o)
        if not ok then raise(auth) end
    end
    local cosocket = o.transport == "cosocket" or (o.transport == "auto" and in_nginx)
    if o.proxy and cosocket then
        handle:close()
        return nil, "signalr.new: option 'proxy' is not supported over nginx cosockets (they"
            .. " cannot go through a proxy); leave it off, or set transport = \"curl\" (libcurl,"
            .. " which blocks the worker)", { code = "EUNSUPPORTED" }
    end
    if o.async then
        if cosocket then
            raise("signalr.new: the async mode drives libcurl from your own loop; inside nginx"
                .. " calls are already non-blocking (leave 'async' off there)")
        end
        -- (the other transports load when a client needs them)
        return require("signalr.transport.async").new(handle, info, o, auth, wake)
    end
    local rest
    if cosocket then
        if not in_nginx then raise("signalr.new: transport 'cosocket' needs nginx (ngx.socket)") end
        if o.ca_file then
            raise("signalr.new: option 'ca_file' is not used inside nginx: cosockets verify"
                .. " against nginx's lua_ssl_trusted_certificate directive; set that instead")
        end
        rest = require("signalr.transport.ngx").new(handle, info, o, auth)
    else
        rest = curl.new(handle, info, o, auth)
    end
    if o.mode ~= "persistent" then return rest end
    local io
    if in_nginx and o.transport ~= "curl" then
        io = require("signalr.transport.persistent.ngx").new(o)
    end
    return require("signalr.transport.persistent").new(rest, handle, o, io, seam)
end

return _M
