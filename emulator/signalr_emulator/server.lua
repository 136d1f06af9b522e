--- Server connections: an app server opens a WebSocket to
-- /server/?hub=<hub>&cid=<id> and speaks the service protocol on it:
-- varint-length-prefixed MessagePack arrays whose first item is the
-- message type.  The emulator answers the handshake, pings every
-- ping_interval seconds, carries out every message a management (Weak)
-- connection sends, acknowledges the ack-able ones, and delivers each
-- data message to every client in that client's protocol.
--
-- In the service's Default and Classic modes (--service-mode), a
-- Default (type 0) or OnDemand (type 1) connection is a hub server's: the
-- clients of its hub are routed to such connections (the one with the
-- fewest clients), each for its life.  The emulator sends it
-- OpenConnection, the client's bytes as ConnectionData and CloseConnection
-- when the client leaves; the ConnectionData it sends back go to the
-- client as they are, and its CloseConnection closes the client.  When
-- such a connection goes, so do its clients.
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

local byte, char, sub, format, lower = string.byte, string.char, string.sub, string.format, string.lower
local concat = table.concat
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

-- MessagePack headers written by hand where lua-messagepack cannot say
-- it: bin payloads, maps with repeated or integer keys, empty maps.
local function header(small, limit, b8, b16, b32, n)
    if n < limit then return char(small + n) end
    if b8 and n < 256 then return char(b8, n) end
    if n < 65536 then return char(b16, floor(n / 256), n % 256) end
    return char(b32, floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end
local function array_of(n) return header(0x90, 16, nil, 0xdc, 0xdd, n) end
local function map_of(n) return header(0x80, 16, nil, 0xde, 0xdf, n) end
local function bin(s) return header(0, 0, 0xc4, 0xc5, 0xc6, #s) .. s end
local EMPTY_MAP = "\128"

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

-- What each message type does: fn(emu, key, m, sc) -> ack status or nil.
local handlers = {
    [5] = function(emu, key, m, sc)    -- CloseConnection
        local c = emu.state:conn(key, m[2])
        local why = type(m[3]) == "string" and m[3] ~= "" and m[3] or nil
        emu.stats.close_connection_received = (emu.stats.close_connection_received or 0) + 1
        if sc.partials then sc.partials[m[2]] = nil end
        -- from the client's own hub server: what it sent before goes first
        if c and c.server == sc then c.close(why, "server")
        elseif c then c.close(why) end
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
-- ConnectionData from a hub server: bytes for one client, in its protocol
-- and framed by the server; fragments (Ext 6 IsPartial) wait for the
-- message that ends them.  A malformed one is an error of the connection.
handlers[6] = function(emu, key, m, sc)
    local id, payload, ext = m[2], m[3], m[4]
    if type(id) ~= "string" or type(payload) ~= "string" or (ext ~= nil and type(ext) ~= "table") then
        error({ malformed = "a ConnectionData without a connection id and a payload" })
    end
    local stats = emu.stats
    stats.connection_data_received = (stats.connection_data_received or 0) + 1
    sc.partials = sc.partials or {}
    local parts = sc.partials[id]
    if ext and ext[6] == true then
        parts = parts or { n = 0 }
        parts[#parts + 1] = payload
        parts.n = parts.n + #payload
        if parts.n > emu.max_server_message then
            error({ malformed = format("fragments of over %d bytes for one client (--max-server-message)",
                emu.max_server_message) })
        end
        sc.partials[id] = parts
        return
    end
    if parts then
        parts[#parts + 1] = payload
        payload = concat(parts)
        sc.partials[id] = nil
    end
    local c = emu.state:conn(key, id)
    if not c then
        stats.connection_data_dropped = (stats.connection_data_dropped or 0) + 1
        return
    end
    if c.from_server then c.from_server(payload) else c.send_raw(payload) end
end

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

-- ===== Default mode: clients routed to hub servers =====

--- The server connection a new client of hub key goes to, or nil: of
-- those that carry clients, the one with the fewest (on a tie, the one
-- given a client longest ago).
function _M.pick(emu, key)
    local best
    for sc in pairs(emu.server_conns) do
        if sc.key == key and sc.carries and sc.handshaken and not sc.done and not sc.dropped
                and (not best or sc.count < best.count
                     or (sc.count == best.count and sc.picked < best.picked)) then
            best = sc
        end
    end
    if best then
        emu.picks = (emu.picks or 0) + 1
        best.picked = emu.picks
    end
    return best
end

-- A claim's value as the string the claims map carries.
local function claim_string(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then
        if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
        return format("%.17g", v)
    end
    if t == "boolean" then return tostring(v) end
    if t == "table" then return util.json.encode(v) end
    return nil -- null
end

-- The client token's claims as the map OpenConnection carries: an array
-- claim as one claim per value (a map may repeat a key), asrs.s.uid set
-- to the user id when the token names the user by nameid only.
local function claims_map(claims, user)
    local names, out, n = {}, {}, 0
    for k in pairs(claims or {}) do
        if type(k) == "string" then names[#names + 1] = k end
    end
    table.sort(names)
    local function add(k, v)
        local sv = claim_string(v)
        if sv then
            out[#out + 1] = mp.pack(k) .. mp.pack(sv)
            n = n + 1
        end
    end
    for _, k in ipairs(names) do
        local v = claims[k]
        if type(v) == "table" and #v > 0 then
            for i = 1, #v do add(k, v[i]) end
        else
            add(k, v)
        end
    end
    if user and (claims or {})["asrs.s.uid"] == nil then add("asrs.s.uid", user) end
    return map_of(n) .. concat(out)
end

-- The client request's headers as map<string, array of strings>.
local function headers_map(list)
    local order, values = {}, {}
    for _, h in ipairs(list or {}) do
        local k, v = h[1], h[2]
        if not values[k] then
            values[k] = {}
            order[#order + 1] = k
        end
        values[k][#values[k] + 1] = v
    end
    local out = { map_of(#order) }
    for _, k in ipairs(order) do
        out[#out + 1] = mp.pack(k) .. array_of(#values[k])
        for _, v in ipairs(values[k]) do out[#out + 1] = mp.pack(v) end
    end
    return concat(out)
end

local function count(emu, what)
    emu.stats[what] = (emu.stats[what] or 0) + 1
end

--- Route client conn (negotiated as p) to sc: OpenConnection [4, id,
-- claims, headers, query, {3: protocol}], then its first bytes (the hub
-- handshake request) as ConnectionData.  False when sc has gone.
function _M.attach(emu, sc, conn, p, first)
    if sc.done or sc.dropped then return false end
    sc.clients[conn.id] = conn
    sc.count = sc.count + 1
    sc.send_body(array_of(6) .. "\4" .. mp.pack(conn.id) .. claims_map(p.claims, p.user)
        .. headers_map(p.headers) .. mp.pack(p.query or "") .. "\129\3" .. mp.pack(conn.protocol))
    count(emu, "open_connection_sent")
    _M.forward(emu, sc, conn.id, first)
    return true
end

--- Bytes from the client id to its server: ConnectionData [6, id, bin, {}].
function _M.forward(emu, sc, id, bytes)
    if sc.done then return end
    sc.send_body(array_of(4) .. "\6" .. mp.pack(id) .. bin(bytes) .. EMPTY_MAP)
    count(emu, "connection_data_sent")
end

--- The client id is gone: CloseConnection [5, id, why, {}, {}] to its
-- server, unless why is nil (the server closed it, or is gone itself).
function _M.detach(emu, sc, id, why)
    if sc.clients[id] then
        sc.clients[id] = nil
        sc.count = sc.count - 1
    end
    if sc.partials then sc.partials[id] = nil end
    if why and not sc.done then
        sc.send_body(array_of(5) .. "\5" .. mp.pack(id) .. mp.pack(why) .. EMPTY_MAP .. EMPTY_MAP)
        count(emu, "close_connection_sent")
    end
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
    local sc = { id = cid, key = key, queue = {}, queued = 0, cond = condition.new(),
                 clients = {}, count = 0, picked = 0 }
    local stats = emu.stats
    local function send(t)
        sc.queue[#sc.queue + 1] = frame(t)
        sc.cond:signal()
    end
    -- a message body already encoded; a server that does not read what
    -- its clients send may hold at most --max-server-message bytes of it
    function sc.send_body(body)
        if sc.done then return end
        local f = varint(#body) .. body
        sc.queued = sc.queued + #f
        if sc.queued > emu.max_server_message and not sc.dropped then
            emu:log("warn", "server %s does not read: over %d bytes waiting for it (--max-server-message):"
                .. " dropped", cid, emu.max_server_message)
            sc.drop()
            return
        end
        sc.queue[#sc.queue + 1] = f
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
                sc.queue, sc.queued = {}, 0
                if not ws:send(batch, "binary") then break end
            elseif #sc.queue > 0 then
                sc.queue, sc.queued = {}, 0 -- stalled: what it would say is lost, as on a dead link
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
        -- WebSocket messages, apart from the service-protocol messages they
        -- carry (a server batches several into one)
        stats.server_ws_messages = (stats.server_ws_messages or 0) + 1
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
                if sc.carries then
                    -- a hub server's stream cannot be trusted past it
                    emu:log("warn", "server %s: a malformed message: closed", cid)
                    broken = true
                    break
                end
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
                    -- [1, version] alone is a Default connection, as .NET reads it
                    sc.type = type(m[3]) == "number" and m[3] or 0
                    local carrier = sc.type == 0 or sc.type == 1
                    sc.carries = carrier and emu.service_mode ~= "serverless"
                    send { 2, "", {}, cid }
                    emu:log("info", "server connection %s to hub %s (type %s)", cid, key, tostring(m[3]))
                    if carrier and not sc.carries then
                        emu:warn_once("serverless hub server " .. key, "server connection %s to hub %s is a"
                            .. " hub server's (type %d), but the emulator runs in serverless mode"
                            .. " (--service-mode): it carries no clients", cid, key, sc.type)
                    end
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
                if h then okh, st = pcall(h, emu, key, m, sc) end
                if not okh and type(st) == "table" and st.malformed then
                    emu:log("warn", "server %s: %s: closed", cid, st.malformed)
                    broken = true
                    break
                end
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
    -- its clients go with it (the service closes them; they may reconnect)
    local n = 0
    for _, c in pairs(sc.clients) do
        c.close(nil, "offline")
        n = n + 1
    end
    if n > 0 then emu:log("info", "server connection %s: closed its %d client(s)", cid, n) end
    -- the server said goodbye: a close frame with 1000
    if not ws.failed and ws.got_close_code == 1000 then
        stats.server_clean_closes = (stats.server_clean_closes or 0) + 1
    end
    pcall(ws.close, ws, close_code, "", 1)
    emu:log("info", "server connection %s closed", cid)
end

return _M
