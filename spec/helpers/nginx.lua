--- Private nginx instances for the specs: a shell without the sanitizer
-- environment, a start that tries another port when one is taken, a
-- stop that keeps the error log for the secrets scan.
local env = require "helpers.env"

local M = {}

--- Run a shell command (the sanitizer environment of `make asan` unset);
-- returns what it printed.
function M.sh(cmd)
    local p = io.popen("unset LD_PRELOAD ASAN_OPTIONS LSAN_OPTIONS SIGNALR_BUILD; " .. cmd)
    local out = p:read("*a")
    p:close()
    return out
end

function M.free_port()
    return 20000 + math.random(0, 20000)
end

--- Start nginx: launch(prefix, port) renders its configuration into a new
-- prefix and starts it, returning what it printed; ready(n) says when it
-- serves.  Returns { port, prefix, base }.
function M.start(launch, ready)
    for _ = 1, 5 do
        local port, prefix = M.free_port(), os.tmpname()
        os.remove(prefix)
        local out = launch(prefix, port)
        if not out:find("Address already in use", 1, true) then
            assert(out == "" or not out:find("emerg"), out)
            local n = { port = port, prefix = prefix, base = "http://127.0.0.1:" .. port }
            -- a watch that stops this nginx once the spec run is gone
            -- (busted killed mid-run would leave it serving): $PPID is
            -- this process, also in the subshell; M.stop ends the watch
            n.watch = M.sh(string.format("(while kill -0 $PPID 2>/dev/null; do sleep 1; done;"
                .. " nginx -p %s -c %s/nginx.conf -s stop) > /dev/null 2>&1 < /dev/null & echo $!",
                prefix, prefix)):match("%d+")
            env.wait(function() return ready(n) end, 10, "nginx")
            return n
        end
    end
    error("no free port for nginx")
end

--- Start nginx with spec/nginx/<conf> (its @ROOT@ and @PORT@ filled in)
-- and the environment variables in vars; ready(n) as for start.
function M.start_conf(conf, vars, ready)
    return M.start(function(prefix, port)
        M.sh("mkdir -p " .. prefix .. "/logs " .. prefix .. "/temp")
        M.sh(string.format("sed -e 's|@ROOT@|%s|g' -e 's|@PORT@|%d|g' %s/spec/nginx/%s > %s/nginx.conf",
            env.root, port, env.root, conf, prefix))
        local set = {}
        for k, v in pairs(vars) do set[#set + 1] = k .. "='" .. v .. "'" end
        table.sort(set)
        return M.sh(string.format("%s nginx -p %s -c %s/nginx.conf 2>&1", table.concat(set, " "),
            prefix, prefix))
    end, ready)
end

--- Write the emulator's connection string where nginx reads it (the
-- emulator starts after nginx; the worker runs as another user).
function M.write_cs(path, cs)
    local f = assert(io.open(path, "w"))
    f:write(cs, "\n")
    f:close()
    M.sh("chmod 644 " .. path)
end

--- Stop nginx and insist that it logged no [error] line (the log is the
-- failure's message).
function M.stop_clean(n)
    M.stop(n)
    local errors = M.sh("grep -c '\\[error\\]' " .. n.prefix .. "/logs/error.log || true")
    assert(errors:match("%d+") == "0", "nginx logged errors:\n" .. M.sh("cat " .. n.prefix .. "/logs/error.log"))
end

function M.stop(n)
    if n.watch then M.sh("kill " .. n.watch .. " 2>/dev/null") end
    M.sh("nginx -p " .. n.prefix .. " -c " .. n.prefix .. "/nginx.conf -s stop 2>&1")
    env.keep_log(n.prefix .. "/logs/error.log", "nginx")
end

return M
