--- The bad-input table: every row is one bad input, the outcome it must
-- get (a raise, or nil + a message + details.code), and nothing may reach
-- the network.  spec/unit/bad_input_spec.lua runs it over each client
-- mode; core/test/test_bad_input.c holds the C API's rows.
local M = {}

local big = string.rep("x", 10 * 1024 * 1024)          -- 10 MB
local cyclic = {}
cyclic[1] = cyclic
local deep = {}
do local t = deep for _ = 1, 2000 do t[1] = {} t = t[1] end end

-- name, call(hub, signalr), expected: "raise" or a code, message fragment
M.ROWS = {
    -- strings with NUL bytes, invalid UTF-8, huge sizes
    { "NUL in a group", function(h) return h:to_group("a\0b", "t") end, "EINVAL", "NUL byte" },
    { "NUL in a target", function(h) return h:broadcast("t\0", {}) end, "EINVAL", "NUL byte" },
    { "NUL in a connection id", function(h) return h:close_connection("c\0") end, "EINVAL", "NUL byte" },
    { "NUL in a reason", function(h) return h:close_connection("c", "r\0") end, "EINVAL", "NUL byte" },
    { "invalid UTF-8 in a user id", function(h) return h:to_user("\255", "t") end, "EINVAL", "not valid UTF-8" },
    { "invalid UTF-8 in a target", function(h) return h:broadcast("\192\175") end, "EINVAL", "not valid UTF-8" },
    { "invalid UTF-8 in a reason", function(h) return h:close_connection("c", "\255") end, "EINVAL",
      "not valid UTF-8" },
    { "a 10 MB argument", function(h) return h:broadcast("t", { big }) end, "ETOOBIG", "1 MB" },
    { "a 10 MB group", function(h) return h:group_exists(big) end, "EINVAL", "at most 1024" },
    { "a 10 MB target", function(h) return h:broadcast(big) end, "ETOOBIG", "" },
    { "a 10 MB connection id", function(h) return h:connection_exists(big) end, "ETOOBIG", "16 KB" },
    -- names at and past every limit
    { "a 1025-character group", function(h) return h:to_group(string.rep("g", 1025), "t") end, "EINVAL",
      "at most 1024" },
    { "a 1025-character user id", function(h) return h:user_exists(string.rep("u", 1025)) end, "EINVAL",
      "at most 1024" },
    { "a whitespace group", function(h) return h:group_exists(" \t\n") end, "EINVAL", "white space" },
    { "a group with a line break", function(h) return h:to_group("a\nb", "t") end, "EINVAL", "line break" },
    { "an empty target", function(h) return h:broadcast("") end, "EINVAL", "target is empty" },
    { "headers past 16 KB", function(h)
          local ids = {}
          for i = 1, 40 do ids[i] = string.rep("c", 500) .. i end
          return h:broadcast("t", nil, { exclude = ids })
      end, "ETOOBIG", "16 KB" },
    { "a huge exclude list", function(h)
          local ids = {}
          for i = 1, 100000 do ids[i] = "c" .. i end
          return h:broadcast("t", nil, { exclude = ids })
      end, "ETOOBIG", "16 KB" },
    -- argument tables JSON cannot carry
    { "invalid UTF-8 in a broadcast argument", function(h) return h:broadcast("m", { "bad\255\254" }) end,
      "EINVAL", "not valid UTF-8" },
    { "invalid UTF-8 in a user send's argument", function(h) return h:to_user("u", "m", { { k = "\192\175" } }) end,
      "EINVAL", "not valid UTF-8" },
    { "invalid UTF-8 in a group send's argument key", function(h)
          return h:to_group("g", "m", { { ["\237\160\128"] = 1 } }) end, "EINVAL", "not valid UTF-8" },
    { "invalid UTF-8 in a connection send's argument", function(h) return h:to_connection("c", "m", { "\255" }) end,
      "EINVAL", "not valid UTF-8" },
    { "invalid UTF-8 in an invoke argument", function(h) return h:invoke("c", "m", { "\255" }) end,
      "EINVAL", "not valid UTF-8" },
    { "invalid UTF-8 in a command's arguments", function(h)
          return h:execute { { type = "SendMessage", target = "t", arguments = { "\255" } } } end,
      "EINVAL", "not valid UTF-8" },
    { "a cyclic argument", function(h) return h:broadcast("t", { cyclic }) end, "EINVAL", "cannot be encoded" },
    { "2000 levels of nesting", function(h) return h:broadcast("t", { deep }) end, "EINVAL",
      "cannot be encoded" },
    { "NaN", function(h) return h:broadcast("t", { 0 / 0 }) end, "EINVAL", "cannot be encoded" },
    { "infinity", function(h) return h:broadcast("t", { math.huge }) end, "EINVAL", "cannot be encoded" },
    { "a function in the arguments", function(h) return h:broadcast("t", { print }) end, "EINVAL",
      "cannot be encoded" },
    { "a coroutine in the arguments", function(h)
          return h:broadcast("t", { { co = coroutine.create(function() end) } }) end, "EINVAL", "cannot be encoded" },
    { "a userdata in the arguments", function(h) return h:broadcast("t", { io.stdout }) end, "EINVAL",
      "cannot be encoded" },
    { "a sparse argument list", function(h) return h:broadcast("t", { 1, nil, 3 }) end, "raise", "signalr.null" },
    { "a nested sparse array", function(h)
          local t = {} t[1] = 1 t[1000] = 2
          return h:broadcast("t", { t }) end, "EINVAL", "cannot be encoded" },
    { "string keys in the argument list", function(h) return h:broadcast("t", { a = 1 }) end, "raise",
      "sequence" },
    -- numbers: ttl, lifetimes, pages
    { "a negative ttl", function(h) return h:add_user_to_group("u", "g", { ttl = -1 }) end, "EINVAL", "ttl" },
    { "a fractional ttl", function(h) return h:add_user_to_group("u", "g", { ttl = 0.5 }) end, "EINVAL", "ttl" },
    { "a huge ttl", function(h) return h:add_user_to_group("u", "g", { ttl = 2 ^ 40 }) end, "EINVAL", "ttl" },
    { "a NaN ttl", function(h) return h:add_user_to_group("u", "g", { ttl = 0 / 0 }) end, "EINVAL", "ttl" },
    { "a string ttl", function(h) return h:add_user_to_group("u", "g", { ttl = "5" }) end, "raise", "number" },
    { "a negative negotiate lifetime", function(h) return h:negotiate { lifetime = -5 } end, "EINVAL",
      "lifetime" },
    { "a huge negotiate lifetime", function(h) return h:negotiate { lifetime = 1e12 } end, "EINVAL", "lifetime" },
    { "a NaN negotiate lifetime", function(h) return h:negotiate { lifetime = 0 / 0 } end, "EINVAL", "lifetime" },
    { "a zero token lifetime", function(h) return h:generate_client_token { lifetime = 0 } end, "EINVAL",
      "lifetime" },
    { "a fractional page size", function(h) return h:group_connections("g", { max_page_size = 1.5 }) end,
      "EINVAL", "max_page_size" },
    { "claims that are not a table", function(h) return h:negotiate { claims = "x" } end, "raise", "claims" },
    { "a function claim", function(h) return h:negotiate { claims = { f = print } } end, "EINVAL",
      "cannot be encoded" },
    -- :execute commands
    { "no commands", function(h) return h:execute({}) end, "EINVAL", "no commands" },
    { "an unknown command type", function(h) return h:execute { { type = "Teleport" } } end, "EINVAL",
      "unknown type 'Teleport'" },
    { "a command group with a line break", function(h)
          return h:execute { { type = "JoinGroup", group = "a\nb" } } end, "EINVAL", "line break" },
    { "a command with NaN arguments", function(h)
          return h:execute { { type = "SendMessage", target = "t", arguments = { 0 / 0 } } } end,
      "EINVAL", "cannot be encoded" },
    { "a filter with a NUL byte", function(h)
          return h:execute({ { type = "CloseConnection" } }, { filter = "a\0" }) end, "EINVAL", "NUL byte" },
    { "a command with a stray key", function(h)
          return h:execute { { type = "JoinGroup", group = "g", target = "t" } } end, "raise", "unknown key" },
    { "invoke with a function argument", function(h) return h:invoke("c", "t", { print }) end, "EINVAL",
      "cannot be encoded" },
    { "invoke with an empty connection id", function(h) return h:invoke("", "t") end, "EINVAL",
      "connection id is empty" },
    -- wrong types raise
    { "a number as the target", function(h) return h:broadcast(5) end, "raise", "target must be a string" },
    { "a table as the group", function(h) return h:to_group({}, "t") end, "raise", "group must be a string" },
    { "an unknown option", function(h) return h:broadcast("t", {}, { exclud = {} }) end, "raise",
      "unknown option" },
    { "a non-string excluded id", function(h) return h:broadcast("t", {}, { exclude = { 1 } }) end, "raise",
      "must be a string" },
}

return M
