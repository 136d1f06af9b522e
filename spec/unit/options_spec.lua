-- signalr.options: one schema per mode, the checks' messages (exact, as
-- signalr.new raises them) and the defaults.  No network.
local options = require "signalr.options"

local CS = "Endpoint=http://127.0.0.1;Port=1;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"

local function with(t)
    t.connection_string = t.connection_string or CS
    return t
end

describe("signalr.options", function()
    describe("check()", function()
        for _, c in ipairs {
            { { tiemout = 1 }, "unknown option 'tiemout'" },
            { { [1] = "x" }, "unknown option '1'" },
            { { timeout = "1" }, "option 'timeout' must be a number, got string" },
            { { on_done = true }, "option 'on_done' must be a function, got boolean" },
            { { timeout = 0 }, "option 'timeout' must be a positive number" },
            { { connect_timeout = 1e9 }, "option 'connect_timeout' must be a positive number" },
            { { token_lifetime = 1.5 }, "option 'token_lifetime' must be a whole number of seconds" },
            { { queue_size = 0 }, "option 'queue_size' must be a positive integer" },
            { { pool_size = 2.5 }, "option 'pool_size' must be a positive integer" },
            { { transport = "tcp" }, "option 'transport' must be \"auto\", \"curl\" or \"cosocket\"" },
            { { retries = 101 }, "option 'retries' must be an integer from 0 to 100" },
            { { health_timeout = 0.0001 }, "option 'health_timeout' must be at least 0.001 seconds" },
            { { health_retry_delay = -1 }, "option 'health_retry_delay' must be a number from 0" },
            { { mode = "fast" }, "option 'mode' must be \"transient\" or \"persistent\"" },
            { { mode = "persistent", async = true }, "mode 'persistent' is already asynchronous"
              .. " (sends return once the frame is handed to a connection): leave 'async' off" },
            { { mode = "persistent", server_timeout = 0 },
              "option 'server_timeout' must be a number of seconds from 0.01" },
            { { mode = "persistent", connection_count = 65 },
              "option 'connection_count' must be an integer from 1 to 64" },
            { { mode = "persistent", max_message_size = 1023 },
              "option 'max_message_size' must be a whole number of bytes from 1024 to 2147483647" },
            { { mode = "persistent", protocols = { "xml" } },
              "option 'protocols' must be a list of \"json\" and \"messagepack\"" },
            { { mode = "persistent", protocols = {} }, "option 'protocols' must name at least one protocol" },
            { { ack_timeout = 1 }, "option 'ack_timeout' is for mode = \"persistent\"" },
            { { mode = "transient", connection_count = 1 }, "option 'connection_count' is for mode = \"persistent\"" },
        } do
            it("raises: " .. c[2], function()
                assert.has_error(function() options.check(with(c[1])) end, "signalr.new: " .. c[2])
            end)
        end

        it("takes every option of every mode, rightly typed", function()
            options.check(with { api_version = "v1", timeout = 2, retries = 0, verify_tls = false, async = true,
                on_done = print, queue_size = 10, max_connections = 2, transport = "curl" })
            options.check(with { mode = "persistent", connection_count = 2, protocols = { "json" },
                ack_timeout = 1, max_message_size = 2048 })
            options.check { endpoints = { CS }, router = print, health_interval = 1, health_retries = 0 }
        end)
    end)

    describe("check_single()", function()
        it("refuses what only a client of several endpoints takes, and needs a connection string", function()
            assert.has_error(function() options.check_single(with { health_interval = 5 }) end,
                "signalr.new: option 'health_interval' is for clients with several endpoints (option 'endpoints')")
            assert.has_error(function() options.check_single { timeout = 1 } end,
                "signalr.new: option 'connection_string' is required")
        end)
    end)

    describe("fill()", function()
        it("puts the defaults under the caller's options, in a new table", function()
            local given = with { timeout = 3 }
            local o = options.fill(given)
            assert.equal(3, o.timeout)
            assert.equal(2, o.retries)
            assert.equal("2022-06-01", o.api_version)
            assert.equal(options.PRODUCT_INFO, o.product_info)
            assert.is_nil(o.connection_count)
            assert.is_nil(given.retries)
        end)
        it("adds persistent mode's defaults in that mode", function()
            local o = options.fill(with { mode = "persistent", ack_timeout = 2 })
            assert.equal(2, o.ack_timeout)
            assert.equal(1, o.connection_count)
            assert.equal(16 * 1024 * 1024, o.max_message_size)
        end)
    end)

    it("the product info names the library, its version and the runtime", function()
        assert.matches("^lua%-signalr/%d+%.%d+%.%d+ %(", options.PRODUCT_INFO)
    end)
end)
