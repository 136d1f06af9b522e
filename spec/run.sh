#!/usr/bin/env bash
# spec/run.sh VERSION SUITE [busted args]: run one busted suite (unit,
# e2e, emulator) under one Lua (5.4, 5.3, 5.1, jit) against the checkout.
set -euo pipefail
v=$1; suite=$2; shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SIGNALR_BUILD:-$root/build}
case $v in jit) lua=luajit; dir=luajit ;; *) lua=lua$v; dir=lua$v ;; esac
export SIGNALR_ROOT=$root SIGNALR_BUILD=$build
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/spec/?.lua;$root/emulator/?.lua;$root/emulator/?/init.lua;;"
export LUA_CPATH="$build/$dir/?.so;;"
cd "$root"
exec busted --lua="$lua" -o utfTerminal "$@" "spec/$suite"
