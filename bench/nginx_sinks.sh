# bench/nginx_sinks.sh, sourced by nginx_broadcast.sh and nginx_ir.sh: the
# two "services" the measured nginx talks to, started in $tmp: an nginx
# answering 202 on $sink_port (REST) and bench/ws_sink.c on $ws_port
# (persistent mode); $tmp/locations.conf (bench/nginx_locations.conf for
# that port) and AzureSignalRConnectionString naming the REST sink.
# ${pin0[@]} (may be empty) prefixes both, e.g. taskset -c 0.
# Needs: root, tmp, sink_port, ws_port.
start_sinks() {
  mkdir -p "$tmp/sink/logs"
  cat > "$tmp/sink/nginx.conf" <<CONF
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $tmp/sink;
  server { listen 127.0.0.1:$sink_port; keepalive_requests 100000; location / { return 202; } } }
CONF
  "${pin0[@]}" nginx -p "$tmp/sink" -c "$tmp/sink/nginx.conf"
  cc -O2 -std=c99 "$root/bench/ws_sink.c" -lcrypto -o "$tmp/ws_sink"
  "${pin0[@]}" "$tmp/ws_sink" "$ws_port" & echo $! > "$tmp/ws_sink.pid"
  sed "s|@WS_PORT@|$ws_port|" "$root/bench/nginx_locations.conf" > "$tmp/locations.conf"
  export AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$sink_port;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
}

# Stop both (for the caller's EXIT trap).
stop_sinks() {
  [ -f "$tmp/ws_sink.pid" ] && kill "$(cat "$tmp/ws_sink.pid")" 2>/dev/null || true
  nginx -p "$tmp/sink" -c "$tmp/sink/nginx.conf" -s stop 2>/dev/null || true
}
