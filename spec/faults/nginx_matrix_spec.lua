-- The fault matrix (spec/helpers/matrix.lua) over cosockets: the sends
-- run inside a real nginx worker whose client has the three endpoints;
-- its health checks run on the worker's own timer.
local env = require "helpers.env"
local matrix = require "helpers.matrix"
local nginx = require "helpers.nginx"
local cjson = require "cjson"
local sh = nginx.sh

local function get(n, path)
    local out = sh("curl -s -w '\\n%{http_code}' '" .. n.base .. path .. "'")
    local body, status = out:match("^(.*)\n(%d+)$")
    return tonumber(status), body
end

local function start(w)
    local cs = {}
    for _, name in ipairs(matrix.NAMES) do cs[name] = w.emu[name].cs end
    return nginx.start(function(prefix, port)
        sh("mkdir -p " .. prefix .. "/logs " .. prefix .. "/temp")
        sh(string.format("sed -e 's|@ROOT@|%s|g' -e 's|@PORT@|%d|g' %s/spec/faults/matrix.conf > %s/nginx.conf",
            env.root, port, env.root, prefix))
        return sh(string.format("MATRIX_EU='%s' MATRIX_US='%s' MATRIX_AP='%s' MATRIX_OPTS='%s'"
            .. " nginx -p %s -c %s/nginx.conf 2>&1", cs.eu, cs.us, cs.ap, cjson.encode(matrix.OPTS),
            prefix, prefix))
    end, function(n)
        return get(n, "/matrix/health") == 200
    end)
end

local function runner(w)
    local n = start(w)
    local r = {}
    function r.idle(s) env.sleep(s) end
    function r.batch(tag, count, gap)
        local status, body = get(n, "/matrix/batch?tag=" .. tag .. "&n=" .. count
            .. (gap and ("&gap=" .. gap) or ""))
        assert.equal(200, status, body)
        return cjson.decode(body)
    end
    function r.all_online()
        env.wait(function()
            local status, body = get(n, "/matrix/health")
            if status ~= 200 then return false end
            local h = cjson.decode(body)
            if not h.ok then return false end
            for _, e in ipairs(h.endpoints) do if not e.online then return false end end
            return true
        end, 15, "every endpoint online")
    end
    function r.negotiate(o)
        local ep = o and o.endpoints and o.endpoints[1]
        local status, body = get(n, "/matrix/negotiate" .. (ep and ("?ep=" .. ep) or ""))
        assert.equal(200, status, body)
        return cjson.decode(body)
    end
    function r.try_negotiate()
        local status, body = get(n, "/matrix/negotiate")
        local t = cjson.decode(body)
        if status == 200 then return t end
        return nil, t.error, { code = t.code }
    end
    function r.close()
        nginx.stop_clean(n)
    end
    return r
end

matrix.suite("nginx (cosockets)", runner, { describe = describe, it = it, setup = setup,
    teardown = teardown, before_each = before_each })
