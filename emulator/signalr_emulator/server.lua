--- Server connections (persistent mode): an app server opens a WebSocket
-- to /server/?hub=<hub>&cid=<id> and speaks the service protocol on it:
-- varint-length-prefixed MessagePack arrays whose first item is the
-- message type.  The emulator answers the handshake, pings every
-- ping_interval seconds, carries out every message a management (Weak)
-- connection sends, acknowledges the ack-able ones, and delivers each
-- data message to every client in that client's protocol.
--
-- Faults (POST /_emulator/faults with "scope":"server"): "status" refuses
-- the upgrade with an HTTP status, "refuse" answers the handshake with an
-- error, "stall" silences every server connection while it is set: it
-- still reads and delivers, but writes nothing (no pings, no acks, no
-- handshake answers), as a service whose replies stopped; DELETE
-- /_emulator/servers drops them all.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local websocket = require "http.websocket"
local rand = require "openssl.rand"
local core = require "signalr.core"
local util = require "signalr_emulator.util"
local auth = require "signalr_emulator.auth"
local entra = require "signalr_emulator.entra"
local mp = require("signalr_emulator.msgpack").mp

local byte, sub, format, lower, concat = string.byte, string.sub, string.format, string.lower, table.concat
local type, pairs, ipairs, pcall, tostring, next = type, pairs, ipairs, pcall, tostring, next
local floor = math.floor

local _M = {}

-- A server may send big messages (persistent mode exists for them); a
-- protocol message is capped (by default; --max-server-message) so a
-- broken length cannot take the process's memory.
local MAX_FRAME = 64 * 1024 * 1024

local function varint(n)
    local out = {}
    repeat
        local b = n % 128
        n = floor(n / 128)
        out[#out + 1] = string.char(n > 0 and b + 128 or b)
    until n == 0
    return concat(out)
end

local function frame(t)
    local body = mp.pack(t)
    return varint(#body) .. body
end

--- The next whole frame of buf from i: its body and the index after it;
-- nil when it is not complete; false when the prefix is broken, false,
-- "too big" when the length is over max (default MAX_FRAME).
local function next_frame(buf, i, max)
    local len, shift, b = 0, 0
    local j = i
    repeat
        b = byte(buf, j)
        if not b then return nil end
        if shift > 28 then return false end
        len = len + (b % 128) * 2 ^ shift
        shift = shift + 7
        j = j + 1
    until b < 128
    if len > (max or MAX_FRAME) then return false, "too big" end
    if j + len - 1 > #buf then return nil end
    return sub(buf, j, j + len - 1), j + len
end
_M.next_frame = next_frame

local function payload_for(payloads, protocol)
    for k, v in pairs(payloads) do
        if type(k) == "string" and lower(k) == protocol then return v end
    end
    return nil
end

-- Hand the data message's payloads to each connection in list, in its
-- protocol; a JSON-only message reaches MessagePack clients transcoded.
local function deliver(emu, list, payloads, seen)
    local n = 0
    if type(payloads) ~= "table" then return 0 end
    for _, c in ipairs(list) do
        if not (seen and seen[c.id]) then
            if seen then seen[c.id] = true end
            local p = payload_for(payloads, c.protocol or "json")
            if p then
                c.send_raw(p)
                n = n + 1
            elseif c.protocol == "messagepack" and payload_for(payloads, "json") then
                c.send(payload_for(payloads, "json"))
                n = n + 1
            else
                emu:log("warn", "server message has no %s payload for client %s",
                    tostring(c.protocol), c.id)
            end
        end
    end
    emu.stats.server_deliveries = (emu.stats.server_deliveries or 0) + n
    return n
end

local function strings(t)
    local out = {}
    if type(t) ~= "table" then return out end
    for i = 1, #t do if type(t[i]) == "string" then out[#out + 1] = t[i] end end
    return out
end

local OK, NOT_FOUND = 1, 2

-- The messages that carry payloads for clients.
local DATA_TYPES = { [7] = 7, [8] = 8, [9] = 9, [10] = 10, [13] = 13, [14] = 14 }

-- The type of a message without decoding it: the first item of its
-- array (a positive fixint for every type there is), or nil.
local function peek_type(body)
    local h = byte(body, 1)
    local at = (h and h >= 0x90 and h <= 0x9f) and 2 or (h == 0xdc and 4) or (h == 0xdd and 6) or nil
    local t = at and byte(body, at)
    return t and t < 0x80 and t or nil
end

-- What each message type does: fn(emu, key, m) -> ack status or nil.
local handlers = {
    [5] = function(emu, key, m)        -- CloseConnection
        local c = emu.state:conn(key, m[2])
        if c then c.close(type(m[3]) == "string" and m[3] ~= "" and m[3] or nil) end
    end,
    [7] = function(emu, key, m)        -- MultiConnectionData
        local list = {}
        for _, id in ipairs(strings(m[2])) do list[#list + 1] = emu.state:conn(key, id) end
        deliver(emu, list, m[3], {})
    end,
    [8] = function(emu, key, m)        -- UserData
        deliver(emu, emu.state:user_conns(key, m[2]), m[3])
    end,
    [9] = function(emu, key, m)        -- MultiUserData
        local seen = {}
        for _, u in ipairs(strings(m[2])) do deliver(emu, emu.state:user_conns(key, u), m[3], seen) end
    end,
    [10] = function(emu, key, m)       -- BroadcastData
        deliver(emu, emu.state:select(key, nil, strings(m[2])), m[3])
    end,
    [11] = function(emu, key, m)       -- JoinGroup
        local c = emu.state:conn(key, m[2])
        if c and type(m[3]) == "string" then c.groups[m[3]] = true end
    end,
    [12] = function(emu, key, m)       -- LeaveGroup
        local c = emu.state:conn(key, m[2])
        if c and type(m[3]) == "string" then c.groups[m[3]] = nil end
    end,
    [13] = function(emu, key, m)       -- GroupBroadcastData
        local list = emu.state:group_conns(key, m[2], strings(m[3]))
        local users = {}
        for _, u in ipairs(strings(m[6])) do users[u] = true end
        local keep = {}
        for _, c in ipairs(list) do if not (c.user and users[c.user]) then keep[#keep + 1] = c end end
        deliver(emu, keep, m[4])
    end,
    [14] = function(emu, key, m)       -- MultiGroupBroadcastData
        local seen = {}
        for _, g in ipairs(strings(m[2])) do deliver(emu, emu.state:group_conns(key, g), m[3], seen) end
    end,
    [16] = function(emu, key, m)       -- UserJoinGroup
        local ttl = type(m[4]) == "table" and m[4][2] or nil
        emu.state:add_user(key, m[2], m[3], ttl)
    end,
    [17] = function(emu, key, m)       -- UserLeaveGroup
        emu.state:remove_user(key, m[2], m[3])
    end,
    [18] = function(emu, key, m)       -- JoinGroupWithAck
        local c = emu.state:conn(key, m[2])
        if not c then return NOT_FOUND end
        c.groups[m[3]] = true
        return OK
    end,
    [19] = function(emu, key, m)       -- LeaveGroupWithAck (nil group: all)
        local c = emu.state:conn(key, m[2])
        if not c then return NOT_FOUND end
        if type(m[3]) == "string" then c.groups[m[3]] = nil else c.groups = {} end
        return OK
    end,
    [21] = function(emu, key, m)       -- CheckUserInGroupWithAck
        return emu.state:user_in_group(key, m[2], m[3]) and OK or NOT_FOUND
    end,
    [23] = function(emu, key, m)       -- CheckGroupExistenceWithAck
        return emu.state:group_exists(key, m[2]) and OK or NOT_FOUND
    end,
    [24] = function(emu, key, m)       -- CheckConnectionExistenceWithAck
        return emu.state:conn(key, m[2]) and OK or NOT_FOUND
    end,
    [25] = function(emu, key, m)       -- CheckUserExistenceWithAck
        return #emu.state:user_conns(key, m[2]) > 0 and OK or NOT_FOUND
    end,
    [26] = function(emu, key, m)       -- UserJoinGroupWithAck (ext 2: ttl)
        local ttl = type(m[5]) == "table" and tonumber(m[5][2]) or nil
        emu.state:add_user(key, m[2], m[3], ttl)
        return OK
    end,
    [27] = function(emu, key, m)       -- UserLeaveGroupWithAck (nil: all)
        emu.state:remove_user(key, m[2], type(m[3]) == "string" and m[3] or nil)
        return OK
    end,
    [30] = function(emu, key, m)       -- CloseConnectionWithAck
        local c = emu.state:conn(key, m[2])
        if not c then return NOT_FOUND end
        c.close(type(m[3]) == "string" and m[3] ~= "" and m[3] or nil)
        return OK
    end,
    [31] = function(emu, key, m)       -- CloseConnectionsWithAck
        for _, c in ipairs(emu.state:select(key, nil, strings(m[4]))) do c.close(m[2] ~= "" and m[2] or nil) end
        return OK
    end,
    [32] = function(emu, key, m)       -- CloseUserConnectionsWithAck
        for _, c in ipairs(emu.state:user_conns(key, m[2], strings(m[5]))) do c.close(m[3] ~= "" and m[3] or nil) end
        return OK
    end,
    [33] = function(emu, key, m)       -- CloseGroupConnectionsWithAck
        for _, c in ipairs(emu.state:group_conns(key, m[2], strings(m[5]))) do c.close(m[3] ~= "" and m[3] or nil) end
        return OK
    end,
}
-- where each ack-able type keeps its ack id
local ACK_AT = { [18] = 4, [19] = 4, [21] = 4, [23] = 3, [24] = 3, [25] = 3, [26] = 4,
                 [27] = 4, [30] = 4, [31] = 3, [32] = 4, [33] = 4 }

-- The server's token: an Entra ID token with a role that may connect
-- servers, else an AccessKey token for <endpoint>/server/?hub=<hub>.
local function authorize(emu, req, hub)
    local token = (req:get("authorization") or ""):match("^[Bb]earer%s+(%S+)$")
    if not token then return nil, "no bearer token" end
    local h = entra.header(token)
    if h and h.alg == "RS256" then
        if not emu.entra then return nil, "Microsoft Entra ID tokens are not accepted" end
        local claims, why = emu.entra:verify(token)
        if not claims then return nil, why end
        local ok, need = entra.allowed(claims, "key")
        if not ok then return nil, "the identity has no role that allows this (" .. need .. ")" end
        return claims
    end
    if emu.disable_local_auth then
        return nil, "local authentication is disabled", 403
    end
    local payload, why = core.jwt_verify(token, emu.key, os.time())
    if not payload then return nil, why end
    local ok, claims = pcall(util.json.decode, payload)
    if not ok or type(claims) ~= "table" or type(claims.aud) ~= "string" then
        return nil, "the token has no audience"
    end
    local a_host, a_hub = claims.aud:match("^https?://([^/]+)/server/?%?hub=([^&#]+)$")
    if not a_host then return nil, "the audience is invalid: expected <endpoint>/server/?hub=<hub>" end
    if not auth.same_host(auth.host_of(a_host), req:get(":authority")) then
        return nil, "the audience is invalid: host '" .. auth.host_of(a_host) .. "' is not this service"
    end
    if lower(a_hub) ~= lower(hub) then return nil, "the audience is invalid: the token is for hub '" .. a_hub .. "'" end
    return claims
end

local function random_id()
    local b = rand.bytes(8)
    return (b:gsub(".", function(c) return format("%02x", byte(c)) end))
end

--- GET /server/?hub=<hub>&cid=<id> with a WebSocket upgrade.
function _M.connect(emu, stream, req, method, query)
    local hub = query.hub and query.hub[#query.hub]
    if method ~= "GET" or not hub or hub == "" then
        util.error_reply(stream, 400, "Error.Request.Invalid", "expected GET /server/?hub=<hub>", method)
        return 400
    end
    local ok, why = core.validate("hub", hub)
    if not ok then
        util.error_reply(stream, 400, "Error.Hub.Invalid", "invalid hub name: " .. why, method)
        return 400
    end
    local claims, reason, status = authorize(emu, req, hub)
    if not claims then
        util.error_reply(stream, status or 401, status == 403 and "Error.Forbidden" or "Error.Unauthorized",
            "authorization failed: " .. reason, method)
        return status or 401
    end
    local f = emu:server_fault("status")
    if f then
        util.error_reply(stream, tonumber(f.status) or 503, "Error.Injected", "injected fault", method)
        return tonumber(f.status) or 503
    end
    local ws = websocket.new_from_stream(stream, req)
    if not ws then
        util.error_reply(stream, 400, "Error.Request.Invalid", "a server connection is a WebSocket", method)
        return 400
    end
    assert(ws:accept())
    -- frames are read strictly, a message up to --max-server-message (lua-http
    -- 0.4's own reader also fails on a frame with a 16-bit length whose
    -- payload has not all arrived with its header)
    util.strict_websocket(ws, emu.max_server_message)
    _M.serve(emu, ws, lower(hub), query.cid and query.cid[1] or random_id())
    util.finish_websocket(ws)
    return 101
end

--- The life of one server connection.
function _M.serve(emu, ws, key, cid)
    local sc = { id = cid, key = key, queue = {}, cond = condition.new() }
    local stats = emu.stats
    local function send(t)
        sc.queue[#sc.queue + 1] = frame(t)
        sc.cond:signal()
    end
    function sc.drop()
        sc.dropped = true
        pcall(ws.close, ws, 1011, "dropped by the emulator", 0)
        local s = ws.socket
        if s then pcall(s.shutdown, s) end
        sc.cond:signal()
    end
    emu.server_conns[sc] = true
    stats.server_connections = (stats.server_connections or 0) + 1

    -- writer: the queue, and a keep-alive every ping_interval seconds
    cqueues.running():wrap(function()
        while not sc.done do
            if #sc.queue == 0 then
                if not sc.cond:wait(emu.ping_interval) and not sc.done and sc.handshaken
                        and not emu:server_fault("stall", true) then
                    sc.queue[1] = frame { 3 }
                end
            end
            if #sc.queue > 0 and not emu:server_fault("stall", true) then
                local batch = concat(sc.queue)
                sc.queue = {}
                if not ws:send(batch, "binary") then break end
            elseif #sc.queue > 0 then
                sc.queue = {} -- stalled: what it would say is lost, as on a dead link
            end
        end
    end)

    local buf, at, close_code = "", 1, 1000
    while not sc.dropped do
        local data, opcode = ws:receive()
        if not data then
            local failed = ws.failed
            if failed then
                emu:log("warn", "server %s: %s%s: closed (close %d)", cid, failed.reason,
                    failed.code == 1009 and format(" (over %d bytes, --max-server-message)",
                        emu.max_server_message) or "", failed.code)
            end
            break
        end
        if opcode == "text" then
            emu:log("warn", "server %s sent a text message: closed", cid)
            break
        end
        buf = sub(buf, at) .. data
        at = 1
        local broken
        while true do
            local body, nexti = next_frame(buf, at, emu.max_server_message)
            if body == false then
                local too_big = nexti ~= nil
                emu:log("warn", "server %s: a message length is %s: closed", cid, too_big
                    and format("over %d bytes (--max-server-message)", emu.max_server_message) or "broken")
                if too_big then close_code = 1009 end
                broken = true
                break
            end
            if not body then break end
            at = nexti
            stats.server_messages = (stats.server_messages or 0) + 1
            local quick = sc.handshaken and DATA_TYPES[peek_type(body)]
            if quick and next(emu.state:get(key).conns) ~= nil then quick = nil end
            local okm, m
            if not quick then okm, m = pcall(mp.unpack, body) end
            if quick then
                -- a message for clients, and the hub has none: counted, not
                -- decoded (nothing would be delivered, and no answer is due)
                local tally = stats.server_types or {}
                stats.server_types = tally
                tally[tostring(quick)] = (tally[tostring(quick)] or 0) + 1
            elseif not okm or type(m) ~= "table" or type(m[1]) ~= "number" then
                emu:log("warn", "server %s: a malformed message was passed over", cid)
            elseif not sc.handshaken then
                if m[1] ~= 1 then
                    emu:log("warn", "server %s: message type %s before the handshake: closed", cid, tostring(m[1]))
                    broken = true
                    break
                end
                local f = emu:server_fault("refuse")
                if f then
                    send { 2, f.message or "the emulator refused this handshake (fault)" }
                    sc.refused = true
                else
                    sc.handshaken = true
                    stats.server_handshakes = (stats.server_handshakes or 0) + 1
                    send { 2, "", {}, cid }
                    emu:log("info", "server connection %s to hub %s (type %s)", cid, key, tostring(m[3]))
                end
            elseif m[1] == 3 then
                -- "status" asks whether this hub has clients
                for i = 2, #m - 1, 2 do
                    if m[i] == "status" then
                        local any = next(emu.state:get(key).conns) ~= nil
                        send { 3, "status", any and "1" or "0" }
                        break
                    end
                end
            elseif m[1] == 28 then
                -- AccessKeyRequest: a temporary key for an Entra ID identity
                local claims, why = nil, "no token"
                if type(m[2]) == "string" and emu.entra then
                    claims, why = emu.entra:verify(m[2])
                end
                if claims then
                    local kid, k = emu:issue_key()
                    send { 29, kid, k, "", "", {} }
                else
                    send { 29, "", "", "UnauthorizedAccessException", tostring(why), {} }
                end
            else
                local h = handlers[m[1]]
                local okh, st = true, nil
                if h then okh, st = pcall(h, emu, key, m) end
                local ack = ACK_AT[m[1]] and m[ACK_AT[m[1]]]
                if ack then
                    if not okh then
                        emu:log("warn", "server %s: message type %d failed: %s", cid, m[1], tostring(st))
                        send { 20, ack, 4, tostring(st), {} }
                    else
                        send { 20, ack, st or OK, "", {} }
                    end
                elseif not okh then
                    emu:log("warn", "server %s: message type %d failed: %s", cid, m[1], tostring(st))
                end
                local tally = stats.server_types or {}
                stats.server_types = tally
                tally[tostring(m[1])] = (tally[tostring(m[1])] or 0) + 1
            end
        end
        if broken then break end
        if sc.refused then
            cqueues.sleep(0.05) -- let the writer send the refusal first
            break
        end
    end
    sc.done = true
    sc.cond:signal()
    emu.server_conns[sc] = nil
    stats.server_connections = stats.server_connections - 1
    pcall(ws.close, ws, close_code, "", 1)
    emu:log("info", "server connection %s closed", cid)
end

return _M
