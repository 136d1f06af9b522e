#!/usr/bin/env bash
# An nginx handler that calls hub:broadcast (examples/openresty, cosockets,
# keep-alive) under wrk, against the same handler that answers 202 without
# the call, measured in the same run.  The "service" is an nginx sink that
# answers 202, so the figure is the library's cost, not a service's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
conns=${CONNS:-16}; secs=${SECS:-5}
sink_port=$((21000 + RANDOM % 5000)); app_port=$((26000 + RANDOM % 5000))
cleanup() {
  nginx -p "$tmp/sink" -c "$tmp/sink/nginx.conf" -s stop 2>/dev/null || true
  nginx -p "$tmp/app" -c "$tmp/app/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/sink/logs"
cat > "$tmp/sink/nginx.conf" <<CONF
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $tmp/sink;
  server { listen 127.0.0.1:$sink_port; keepalive_requests 100000; location / { return 202; } } }
CONF
nginx -p "$tmp/sink" -c "$tmp/sink/nginx.conf"
export AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$sink_port;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
"$root/examples/openresty/run.sh" "$tmp/app" "$app_port" /etc/ssl/certs/ca-certificates.crt \
  "$root/bench/nginx_locations.conf"
sleep 0.5
body='{"target":"newMessage","arguments":["hello",{"x":1}]}'
cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
LUA
curl -sf --data-binary "$body" "http://127.0.0.1:$app_port/chat/broadcast" > /dev/null
run() { wrk -t1 -c"$conns" -d"${secs}s" -s "$tmp/post.lua" "http://127.0.0.1:$app_port$1" | awk '/Requests\/sec/ {print $2}'; }
noop=$(run /bench/noop)
bcast=$(run /chat/broadcast)
errors=$(grep -c '\[error\]' "$tmp/app/logs/error.log" || true)
ratio=$(awk -v a="$bcast" -v b="$noop" 'BEGIN { printf "%.2f", a / b }')
echo "nginx handler, wrk -t1 -c$conns -d${secs}s, 1 worker:"
echo "  without the hub call:      $noop req/s"
echo "  with hub:broadcast (sink): $bcast req/s"
echo "  ratio: $ratio   (errors logged: $errors)"
