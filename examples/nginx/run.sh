#!/usr/bin/env bash
# run.sh PREFIX PORT [CA_FILE]: render nginx.conf into
# PREFIX and start a private nginx on 127.0.0.1:PORT (stop it with
# `nginx -p PREFIX -c PREFIX/nginx.conf -s stop`).  Needs
# AzureSignalRConnectionString in the environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -lt 2 ]; then
  echo "usage: $0 PREFIX PORT [CA_FILE]" >&2
  echo "  PREFIX  a directory for nginx.conf, logs and temp files (created)" >&2
  echo "  PORT    the port on 127.0.0.1 to listen on" >&2
  echo "  needs AzureSignalRConnectionString in the environment" >&2
  exit 2
fi
prefix=$1; port=$2; ca=${3:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$prefix/logs" "$prefix/temp"
sed -e "s|@ROOT@|$root|g" -e "s|@PORT@|$port|g" -e "s|@CA@|$ca|g" \
    "$root/examples/nginx/nginx.conf" > "$prefix/nginx.conf"
# nginx's Lua module puts LUA_PATH and LUA_CPATH of the environment where
# the configuration's ";;" stands: a shell where `eval "$(luarocks path)"`
# ran for Lua 5.4 would make LuaJIT load 5.4 modules ("cjson.so: undefined
# symbol: lua_newuserdatauv"); the configuration names its own paths
unset LUA_PATH LUA_CPATH LUA_PATH_5_1 LUA_CPATH_5_1 LUA_PATH_5_4 LUA_CPATH_5_4 LUA_INIT
exec nginx -p "$prefix" -c "$prefix/nginx.conf"
