--- The API table shared by both transports' specs (libcurl in
-- spec/unit/rest_spec.lua, cosockets in spec/nginx/nginx_spec.lua): each
-- row calls one hub method and names the exact request the service must
-- receive, for both route families.
local assert = require "luassert"
local M = {}

local ARGS = { "hi", { x = 1 } }
local BODY = '{"target":"newMessage","arguments":["hi",{"x":1}]}'

-- name, hub method, its arguments, { v2 method, v2 path, v2 result }, { v1 ... } or false when
-- v1 lacks the operation.  The emulator has no clients, so connection
-- operations meet "does not exist".
M.ROWS = {
    { "broadcast", "broadcast", { "newMessage", ARGS },
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat", true, BODY } },
    { "broadcast with exclude", "broadcast", { "newMessage", ARGS, { exclude = { "c1", "c 2" } } },
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01&excluded=c1&excluded=c%202", true, BODY },
      { "POST", "/api/v1/hubs/chat?excluded=c1&excluded=c%202", true, BODY } },
    { "broadcast without args", "broadcast", { "newMessage" },
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01", true,
        '{"target":"newMessage","arguments":[]}' },
      { "POST", "/api/v1/hubs/chat", true, '{"target":"newMessage","arguments":[]}' } },
    { "to_user", "to_user", { "user/1", "newMessage", ARGS },
      { "POST", "/api/hubs/chat/users/user%2F1/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/users/user%2F1", true, BODY } },
    { "to_group", "to_group", { "group one", "newMessage", ARGS },
      { "POST", "/api/hubs/chat/groups/group%20one/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/groups/group%20one", true, BODY } },
    { "to_group with exclude", "to_group", { "g", "newMessage", ARGS, { exclude = { "c1" } } },
      { "POST", "/api/hubs/chat/groups/g/:send?api-version=2022-06-01&excluded=c1", true, BODY },
      { "POST", "/api/v1/hubs/chat/groups/g?excluded=c1", true, BODY } },
    -- a send to an unknown connection is accepted (the swagger has no 404)
    { "to_connection", "to_connection", { "conn?1", "newMessage", ARGS },
      { "POST", "/api/hubs/chat/connections/conn%3F1/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/connections/conn%3F1", true, BODY } },
    { "add_connection_to_group", "add_connection_to_group", { "c1", "g" },
      { "PUT", "/api/hubs/chat/groups/g/connections/c1?api-version=2022-06-01", nil },
      { "PUT", "/api/v1/hubs/chat/groups/g/connections/c1", nil } },
    { "remove_connection_from_group", "remove_connection_from_group", { "c1", "g" },
      { "DELETE", "/api/hubs/chat/groups/g/connections/c1?api-version=2022-06-01", nil },
      { "DELETE", "/api/v1/hubs/chat/groups/g/connections/c1", nil } },
    { "remove_connection_from_all_groups", "remove_connection_from_all_groups", { "c1" },
      { "DELETE", "/api/hubs/chat/connections/c1/groups?api-version=2022-06-01", nil },
      false },
    { "add_user_to_group", "add_user_to_group", { "u1", "g" },
      { "PUT", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "PUT", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "add_user_to_group with ttl", "add_user_to_group", { "u1", "g", { ttl = 30 } },
      { "PUT", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01&ttl=30", true },
      { "PUT", "/api/v1/hubs/chat/groups/g/users/u1?ttl=30", true } },
    { "user_in_group", "user_in_group", { "u1", "g" },
      { "HEAD", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "GET", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "remove_user_from_group", "remove_user_from_group", { "u1", "g" },
      { "DELETE", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "user_in_group after removal", "user_in_group", { "u1", "g" },
      { "HEAD", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/groups/g/users/u1", false } },
    { "remove_user_from_all_groups", "remove_user_from_all_groups", { "u1" },
      { "DELETE", "/api/hubs/chat/users/u1/groups?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/users/u1/groups", true } },
    { "connection_exists", "connection_exists", { "c1" },
      { "HEAD", "/api/hubs/chat/connections/c1?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/connections/c1", false } },
    { "user_exists", "user_exists", { "u1" },
      { "HEAD", "/api/hubs/chat/users/u1?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/users/u1", false } },
    { "group_exists", "group_exists", { "g" },
      { "HEAD", "/api/hubs/chat/groups/g?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/groups/g", false } },
    { "close_connection", "close_connection", { "c1", "bye now" },
      { "DELETE", "/api/hubs/chat/connections/c1?api-version=2022-06-01&reason=bye%20now", true },
      { "DELETE", "/api/v1/hubs/chat/connections/c1?reason=bye%20now", true } },
    { "close_all_connections", "close_all_connections", { { reason = "x" } },
      { "POST", "/api/hubs/chat/:closeConnections?api-version=2022-06-01&reason=x", true },
      false },
    { "close_group_connections", "close_group_connections", { "g" },
      { "POST", "/api/hubs/chat/groups/g/:closeConnections?api-version=2022-06-01", true },
      false },
    { "close_user_connections", "close_user_connections", { "u1", { exclude = { "c9" } } },
      { "POST", "/api/hubs/chat/users/u1/:closeConnections?api-version=2022-06-01&excluded=c9", true },
      false },
    -- the Azure Functions output-binding shapes
    { "send: message to a user", "send", { { target = "newMessage", arguments = ARGS, userId = "u1" } },
      { "POST", "/api/hubs/chat/users/u1/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/users/u1", true, BODY } },
    { "send: message to a group", "send", { { target = "newMessage", arguments = ARGS, groupName = "g" } },
      { "POST", "/api/hubs/chat/groups/g/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/groups/g", true, BODY } },
    { "send: broadcast", "send", { { target = "newMessage", arguments = ARGS } },
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat", true, BODY } },
    { "send: add user", "send", { { action = "add", userId = "u1", groupName = "g" } },
      { "PUT", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "PUT", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "send: remove user", "send", { { action = "remove", userId = "u1", groupName = "g" } },
      { "DELETE", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "send: removeAll user", "send", { { action = "removeAll", userId = "u1" } },
      { "DELETE", "/api/hubs/chat/users/u1/groups?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/users/u1/groups", true } },
    { "send: add connection", "send", { { action = "Add", connectionId = "c1", groupName = "g" } },
      { "PUT", "/api/hubs/chat/groups/g/connections/c1?api-version=2022-06-01", nil },
      { "PUT", "/api/v1/hubs/chat/groups/g/connections/c1", nil } },
    { "send: removeAll connection", "send", { { action = "removeAll", connectionId = "c1" } },
      { "DELETE", "/api/hubs/chat/connections/c1/groups?api-version=2022-06-01", nil },
      false },
}


-- Transport failures and retries, the same for both transports:
-- name, fault to inject, client options, hub method, args, expectation.
M.FAULTS = {
    { "500 on a send: not retried", { mode = "status", status = 500, count = 3 },
      { retries = 3, retry_delay = 0.01 }, "broadcast", { "t" },
      { code = "ESTATUS", status = 500, requests = 1, msg = "HTTP 500" } },
    { "503 on a send: retried, then succeeds", { mode = "status", status = 503, count = 2 },
      { retries = 2, retry_delay = 0.01 }, "broadcast", { "t" }, { result = true, requests = 3 } },
    { "429 with Retry-After: retried", { mode = "status", status = 429, retry_after = 0 },
      { retries = 1, retry_delay = 0.01 }, "broadcast", { "t" }, { result = true, requests = 2 } },
    { "500 on a check: retried", { mode = "status", status = 500 },
      { retries = 1, retry_delay = 0.01 }, "user_exists", { "nobody" }, { result = false, requests = 2 } },
    { "a stall past the timeout: ETIMEDOUT, a send not retried", { mode = "stall", ms = 1200 },
      { retries = 2, timeout = 0.3 }, "broadcast", { "t" },
      { code = "ETIMEDOUT", requests = 1, msg = "timed out" } },
    { "a reset: EHTTP", { mode = "reset" }, { retries = 0 }, "broadcast", { "t" },
      { code = "EHTTP", requests = 1 } },
    { "a chunked error reply is read whole", { mode = "status", status = 400, chunked = true },
      { retries = 0 }, "broadcast", { "t" },
      { code = "ESTATUS", status = 400, requests = 1, msg = "injected fault, sent in chunks" } },
}

local contract -- the swagger files' operations, loaded once

--- Assert that one call produced `want` and the emulator got exactly it,
-- and that the request conforms to the swagger files.
-- created: the time the client was made (tokens are cached per audience).
function M.check(emu, want, created, ok, msg, details)
    local cjson = require "cjson"
    local core = require "signalr.core"
    local env = require "helpers.env"
    local swagger = require "helpers.swagger"
    local req, n = emu:last_request()
    assert.equal(1, n)
    contract = contract or swagger.load(swagger.dir(env.root),
        env.root .. "/spec/conformance/sheets")
    local op, why = swagger.check(contract, req)
    assert(op, req.method .. " " .. req.path .. " breaks the contract:\n  "
        .. table.concat(why or {}, "\n  "))
    assert.equal(want[1], req.method)
    assert.equal(want[2], req.path)
    local token = req.headers.authorization:match("^Bearer (.+)$")
    local payload = assert(core.jwt_verify(token, env.KEY))
    local claims = cjson.decode(payload)
    assert.equal("http://localhost" .. want[2]:gsub("%?.*$", ""), claims.aud)
    assert.is_true(claims.exp >= created + 3600 and claims.exp <= os.time() + 3600)
    assert.truthy(req.headers["user-agent"]:match("^lua%-signalr/%d"))
    assert.truthy(req.headers["asrs-user-agent"]:match("^lua%-signalr/%d[%d.]* %(.+%)$"),
        req.headers["asrs-user-agent"])
    if want[4] then
        assert.equal(want[4], req.body)
        assert.equal("application/json; charset=utf-8", req.headers["content-type"])
    else
        assert.is_nil(req.body)
    end
    if want[3] == nil then
        assert.is_nil(ok)
        assert.equal("ESTATUS", details.code)
        assert.equal(404, details.status)
        assert.equal("Error.Connection.NotExisted", details.service_code)
        assert.truthy(msg:find("does not exist", 1, true), msg)
    else
        assert.equal(want[3], ok, msg)
    end
end

--- Run one FAULTS row: inject its fault, make the call through
-- call(options, method, args) on the transport under test, check.
function M.fault_case(emu, f, call)
    emu:http("DELETE", "/_emulator/faults")
    emu:clear()
    emu:fault(f[2])
    local opts = { connection_string = emu.cs }
    for k, v in pairs(f[3]) do opts[k] = v end
    M.check_fault(emu, f[6], call(opts, f[4], f[5]))
end

--- Assert one FAULTS row's outcome.
function M.check_fault(emu, expect, ok, msg, details)
    if expect.code then
        assert.is_nil(ok)
        assert.equal(expect.code, details.code, msg)
        if expect.status then assert.equal(expect.status, details.status) end
        if expect.msg then assert.truthy(msg:find(expect.msg, 1, true), msg) end
    else
        assert.equal(expect.result, ok, msg)
    end
    assert.equal(expect.requests, #emu:requests())
end

M.BODY = BODY
return M
