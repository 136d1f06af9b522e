-- The C library as a C programmer gets it: `make install PREFIX=...`,
-- examples/c/send.c built with pkg-config against the installed files (the
-- shared library, then the static one), run against the emulator; a real
-- SignalR client receives what it sent.
local signalr = require "signalr"
local env = require "helpers.env"

local function sh(cmd)
    local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("exit=(%d+)%s*$"))
    return code, out:gsub("exit=%d+%s*$", "")
end

describe("the installed C library", function()
    local emu, pool, prefix
    setup(function()
        emu = env.emulator()
        pool = env.clients(emu)
        prefix = emu.dir .. "/prefix"
        local code, out = sh("cd " .. env.root .. " && make -s install PREFIX=" .. prefix
            .. " BUILD=" .. (os.getenv("SIGNALR_BUILD") or (env.root .. "/build")))
        assert(code == 0, out)
    end)
    teardown(function()
        pool:quit()
        emu:stop()
    end)

    it("installs the header, both libraries and a pkg-config file", function()
        for _, f in ipairs { "include/signalr.h", "lib/libsignalr.a", "lib/libsignalr.so",
                             "lib/pkgconfig/signalr.pc" } do
            assert.truthy(io.open(prefix .. "/" .. f), f)
        end
        local code, out = sh("PKG_CONFIG_PATH=" .. prefix .. "/lib/pkgconfig pkg-config --modversion signalr")
        assert.equal(0, code)
        assert.equal(signalr._VERSION, (out:gsub("%s+$", "")))
    end)

    for _, kind in ipairs { "shared", "static" } do
        it("examples/c/send.c, linked " .. kind .. ", reaches a real client", function()
            local hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
            local name = "c-" .. kind
            assert(pool:connect(name, assert(hub:negotiate())))
            local bin = emu.dir .. "/send-" .. kind
            local pc = "PKG_CONFIG_PATH=" .. prefix .. "/lib/pkgconfig pkg-config "
            local link = kind == "static"
                and ("$(" .. pc .. "--cflags signalr) " .. prefix .. "/lib/libsignalr.a -lcurl -lcrypto -lwslay")
                or ("$(" .. pc .. "--cflags --libs signalr) -Wl,-rpath," .. prefix .. "/lib")
            local code, out = sh("cc -std=c99 -Wall -Wextra -Werror " .. env.root
                .. "/examples/c/send.c -o " .. bin .. " " .. link)
            assert(code == 0, out)
            code, out = sh("AzureSignalRConnectionString='" .. emu.cs .. "' " .. bin .. " chat hi-" .. kind)
            assert(code == 0, out)
            assert.truthy(out:find("broadcast: sent", 1, true), out)
            assert.truthy(out:find("user 'nobody' connected: no", 1, true), out)
            env.wait(function()
                for _, m in ipairs(pool:messages(name)) do
                    if m.args[1] == "hi-" .. kind then return true end
                end
            end, 10, name .. " to receive the C program's broadcast")
        end)
    end

    it("reports a bad connection string with a code and a message, and no key", function()
        local bin = emu.dir .. "/send-shared"
        local code, out = sh("AzureSignalRConnectionString='Endpoint=x;AccessKey=SECRETSECRET' " .. bin .. " chat x")
        assert.equal(1, code)
        assert.truthy(out:find("^ECONNSTR: "), out)
        assert.falsy(out:find("SECRETSECRET", 1, true), out)
    end)
end)
