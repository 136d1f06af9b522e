std = "max"
max_line_length = 120
files["spec"] = { std = "+busted" }
exclude_files = { "spec/e2e/node_modules" }
read_globals = { "ngx" }
files["examples/openresty"] = { globals = { "ngx" } }
files["lua/signalr/upstream.lua"] = { globals = { "ngx" } }
