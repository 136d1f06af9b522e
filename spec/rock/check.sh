#!/usr/bin/env bash
# spec/rock/check.sh: the rocks as a user installs them, offline.  Each
# check prints "ok - ..." or "not ok - ..."; the last line sums them up as
# "N passed, N failed".
#
# The install commands are the README's own: every block of README.md
# marked with the line
#   <!-- checked by spec/rock/check.sh: it runs these lines as written -->
# (right before its ```sh fence) is read here, so the test and the docs
# cannot drift.  Its `apt-get install` lines must name only packages that
# are installed (so running them would change nothing); its `luarocks`
# lines run exactly as written, from a copy of the checkout, with a
# LuaRocks configuration whose only tree is an empty one and whose only
# rocks server is an empty folder, so they install where a user's would
# and fetch nothing.  Any
# other line fails until this script learns to check it.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
pass=0; fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@" > "$work/last.log" 2>&1; then ok "$what"; else bad "$what"; tail -n 15 "$work/last.log"; fi; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(sed -n 's/^#define SIGNALR_VERSION "\(.*\)"/\1/p' core/include/signalr.h)
src="$work/src"; mkdir -p "$src"
cp -r core binding lua emulator bin rockspec types "$src"/

# the release rockspec is the dev one but for its version and source
check "release rockspec $version-1 matches the dev rockspec" bash -c "
  diff <(grep -v -E '^(version|   url|   dir|-- )' rockspec/lua-signalr-dev-1.rockspec) \
       <(grep -v -E '^(version|   url|   dir|-- )' rockspec/lua-signalr-$version-1.rockspec)"
# every module under lua/ is listed in the rockspec
check "every Lua module is listed in the rockspec" bash -c '
  for f in $(cd lua && find . -name "*.lua"); do
    grep -q "\"lua/${f#./}\"" rockspec/lua-signalr-dev-1.rockspec || { echo "missing: $f"; exit 1; }
  done'
# every C source of the core and the binding is listed in the rockspec
check "every C source is listed in the rockspec" bash -c '
  for f in core/src/*.c binding/*.c; do
    grep -q "\"$f\"" rockspec/lua-signalr-dev-1.rockspec || { echo "missing: $f"; exit 1; }
  done'
check "lua-cjson is a declared dependency" grep -q '"lua-cjson"' rockspec/lua-signalr-dev-1.rockspec

# ---- the README's install blocks ----
MARK='<!-- checked by spec/rock/check.sh: it runs these lines as written -->'
doc=()
if [ -f README.md ]; then
  mapfile -t doc < <(awk -v mark="$MARK" '
    $0 == mark { want = 1; next }
    want == 1 && /^```/ { want = 2; next }
    want == 1 { want = 0; next }            # the mark must sit right before a fence
    want == 2 && /^```/ { want = 0; next }
    want == 2 && !/^[[:space:]]*(#|$)/ { print }' README.md)
fi
lib_cmd=""; emu_cmd=""
if [ ${#doc[@]} -eq 0 ]; then
  bad "README.md has no install block marked '$MARK' before its \`\`\`sh fence: nothing to check the rocks by"
else
  ok "README.md: ${#doc[@]} install commands in its marked blocks"
fi
# run_doc TREE CMD: a README command as written, from the copy of the
# checkout, with LuaRocks as a user's but for its one tree (TREE) and, as
# its only rocks server, an empty folder (an empty list would leave the
# default servers in place)
mkdir -p "$work/no-rocks-server"
run_doc() {
  local cfg="$work/luarocks-${1##*/}.lua"
  printf 'rocks_trees = { [[%s]] }\nrocks_servers = { [[%s]] }\n' "$1" "$work/no-rocks-server" > "$cfg"
  (cd "$src" && env -u LUAROCKS_CONFIG_5_1 -u LUAROCKS_CONFIG_5_2 -u LUAROCKS_CONFIG_5_3 \
     -u LUAROCKS_CONFIG_5_4 LUAROCKS_CONFIG="$cfg" bash -c "$2")
}
for line in "${doc[@]}"; do
  case $line in
    "apt-get install "*)
      missing=""
      for pkg in ${line#apt-get install }; do
        case $pkg in -*) continue ;; esac
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
          missing="$missing $pkg"
      done
      if [ -z "$missing" ]; then ok "README: $line (every package is installed)"
      else bad "README: $line: not installed:$missing"; fi ;;
    "luarocks "*rockspec/lua-signalr-dev-1.rockspec*) lib_cmd=$line ;;
    "luarocks "*rockspec/signalr-emulator-dev-1.rockspec*) emu_cmd=$line ;;
    *) bad "README: no check for the install command: $line" ;;
  esac
done
[ -n "$lib_cmd" ] || bad "README: no marked luarocks command installs rockspec/lua-signalr-dev-1.rockspec"
[ -n "$emu_cmd" ] || bad "README: no marked luarocks command installs rockspec/signalr-emulator-dev-1.rockspec"

# the library's command as written (5.4), then the same for 5.3 and 5.1
for v in 5.4 5.3 5.1; do
  tree="$work/tree-$v"
  [ -n "$lib_cmd" ] || continue
  cmd=${lib_cmd//--lua-version=5.4/--lua-version=$v}
  if [ "$v" != 5.4 ] && [ "$cmd" = "$lib_cmd" ]; then
    bad "lua$v: the README's command names no --lua-version=5.4 to change: $lib_cmd"; continue
  fi
  what="the README's command"; [ "$v" = 5.4 ] || what="the README's command for $v"
  if run_doc "$tree" "$cmd" > "$work/make-$v.log" 2>&1; then
    ok "lua$v: $what into an empty tree: $cmd"
  else
    bad "lua$v: $what: $cmd"; tail -n 20 "$work/make-$v.log"; continue
  fi
  stray=$(find "$tree/share" -name '*.c' -o -name '*.h' -o -name '*.o' -o -name '*.so' | head -3)
  if [ -z "$stray" ]; then ok "lua$v: only Lua modules under share/lua"; else bad "lua$v: stray files: $stray"; fi
  [ -f "$tree/lib/luarocks/rocks-$v/lua-signalr/dev-1/types/signalr.lua" ] &&
    ok "lua$v: LuaLS annotations in the rock's folder" || bad "lua$v: no LuaLS annotations"
  syms=$(nm -D --defined-only "$tree/lib/lua/$v/signalr/core.so" | grep -c ' sr__' || true)
  if [ "$syms" = 0 ]; then ok "lua$v: no internal symbol exported"; else bad "lua$v: $syms internal symbols exported"; fi
  # only the tree, plus the system's lua-cjson (there is no rocks server
  # here to install the declared dependency into the tree)
  runs=("lua$v"); [ "$v" = 5.1 ] && runs+=(luajit)
  for lua in "${runs[@]}"; do
    check "$lua: require works from the tree alone (+ system cjson)" env -u LUA_INIT \
      LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua" \
      LUA_CPATH="$tree/lib/lua/$v/?.so;/usr/lib/x86_64-linux-gnu/lua/$v/cjson.so" \
      "$lua" -e "
        local s = require 'signalr'
        assert(s._VERSION == '$version', s._VERSION)
        local n = assert(assert(s.new('Endpoint=https://x;AccessKey=k')):hub('h'):negotiate{ user_id = 'u' })
        assert(n.url == 'https://x/client/?hub=h' and #n.accessToken > 100)
        assert(io.open('$tree/share/lua/$v/signalr/transport/ngx.lua'))"
  done
done

# the signalr command from the 5.4 tree
check "the installed signalr command runs" bash -c "
  eval \"\$(luarocks --lua-version=5.4 path --tree '$work/tree-5.4')\"
  cd / && '$work/tree-5.4/bin/signalr' --help | grep -q '^usage: signalr' &&
  { '$work/tree-5.4/bin/signalr' broadcast chat t 2>/dev/null; [ \$? -eq 2 ]; }"

# the emulator's own rock, beside the library in one tree: the README's
# command as written
tree="$work/tree-5.4"
if [ -n "$emu_cmd" ] && run_doc "$tree" "$emu_cmd" > "$work/emu.log" 2>&1; then
  ok "signalr-emulator rock installs: $emu_cmd"
  check "the installed signalr-emulator starts" bash -c "
    eval \"\$(luarocks --lua-version=5.4 path --tree '$tree')\"
    cd / && timeout 5 '$tree/bin/signalr-emulator' --port 0 | head -n 1 | grep -q '^Connection string: Endpoint=http://localhost;Port='"
else
  bad "signalr-emulator rock: ${emu_cmd:-no README command}"; tail -n 20 "$work/emu.log" 2>/dev/null
fi
[ -z "$(find "$work/tree-5.4/share" -path '*signalr/*' -name '*emulator*')" ] && ok "the library rock carries no emulator module" || bad "emulator modules in the library"

# make dist from a clean clone of HEAD
git clone -q "$root" "$work/clone" 2>/dev/null
if (cd "$work/clone" && make -s dist BUILD="$work/b") > "$work/dist.log" 2>&1; then
  for f in lua-signalr-$version.tar.gz lua-signalr-$version-1.rockspec \
           lua-signalr-$version-1.src.rock lua-signalr-$version-1.linux-x86_64.rock; do
    [ -s "$work/b/dist/$f" ] && ok "make dist: $f" || bad "make dist: $f missing"
  done
  check "the binary rock installs and loads" bash -c "
    luarocks --lua-version=5.4 install --deps-mode=none --tree '$work/bin-tree' \
      '$work/b/dist/lua-signalr-$version-1.linux-x86_64.rock' &&
    LUA_PATH='$work/bin-tree/share/lua/5.4/?.lua;$work/bin-tree/share/lua/5.4/?/init.lua;;' \
    LUA_CPATH='$work/bin-tree/lib/lua/5.4/?.so;;' lua5.4 -e 'assert(require(\"signalr\")._VERSION == \"$version\")'"
else
  bad "make dist"; tail -n 20 "$work/dist.log"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
