# lua-signalr: build, tests and tools.  `make test` is what CI runs; it
# installs missing Debian packages and npm modules first (idempotent).
CC      ?= cc
AR      ?= ar
# Lua versions for the binding and the unit specs ("jit" = LuaJIT 2.1)
LUAS    ?= 5.4 5.1 5.3 jit
WARN     = -std=c99 -pedantic -Wall -Wextra -Wshadow -Wwrite-strings \
           -Wstrict-prototypes -Wmissing-prototypes -Wswitch-enum
CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
BUILD   ?= build
# the one version, from the public header
VERSION := $(shell sed -n 's/^\#define SIGNALR_VERSION "\(.*\)"/\1/p' core/include/signalr.h)
SAN     ?=
ALLCFLAGS = $(WARN) $(WERROR) $(CFLAGS) $(SAN) -fPIC -fvisibility=hidden \
            -Icore/include -Icore/src
LIBS     = -lcurl -lcrypto -lwslay

CORE_SRC = $(wildcard core/src/*.c)
CORE_OBJ = $(CORE_SRC:core/src/%.c=$(BUILD)/core/%.o)
CTESTS   = $(patsubst core/test/%.c,$(BUILD)/test/%,$(wildcard core/test/test_*.c))
lua_pc   = $(if $(filter jit,$(1)),luajit,lua$(1))
BINDINGS = $(foreach v,$(LUAS),$(BUILD)/lua$(v)/signalr/core.so)

APT_PKGS = build-essential pkg-config curl libcurl4-openssl-dev libssl-dev \
           lua5.4 liblua5.4-dev lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev \
           luajit2 libluajit2-5.1-dev lua-cjson lua-busted lua-check luarocks \
           lua-http lua-cqueues lua-luaossl valgrind nginx-light \
           libnginx-mod-http-lua openssl wrk python3-requests python3-jwt \
           lua-rex-pcre2 lua-ldoc clang cppcheck lua-luv time lua-messagepack \
           libwslay-dev locales tinyproxy

.PHONY: all core bindings deps test test-c test-lua test-e2e test-nginx lint dist install docs \
        fuzz fuzz-long valgrind static \
        asan demo demo-server rock emulator bench bench-nginx clean

all: core bindings

core: $(BUILD)/libsignalr.a $(BUILD)/libsignalr.so
bindings: $(BINDINGS)

# ---- dependencies (idempotent: only what is missing is installed) ----
deps:
	@bash .ci/deps.sh $(APT_PKGS)

# ---- C core ----
$(BUILD)/core/%.o: core/src/%.c core/include/signalr.h $(wildcard core/src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(BUILD)/libsignalr.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

# the shared C library (soname libsignalr.so.<major>.<minor> while 0.x)
SOVER    = $(word 1,$(subst ., ,$(VERSION))).$(word 2,$(subst ., ,$(VERSION)))
$(BUILD)/libsignalr.so: $(CORE_OBJ)
	$(CC) -shared -Wl,-soname,libsignalr.so.$(SOVER) $^ $(LIBS) -o $@

# make install PREFIX=/usr/local [DESTDIR=...]: libsignalr.so, libsignalr.a,
# signalr.h and signalr.pc (pkg-config --cflags --libs signalr)
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
install: core
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 644 core/include/signalr.h $(DESTDIR)$(INCDIR)/signalr.h
	install -m 644 $(BUILD)/libsignalr.a $(DESTDIR)$(LIBDIR)/libsignalr.a
	install -m 755 $(BUILD)/libsignalr.so $(DESTDIR)$(LIBDIR)/libsignalr.so.$(VERSION)
	ln -sf libsignalr.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsignalr.so.$(SOVER)
	ln -sf libsignalr.so.$(SOVER) $(DESTDIR)$(LIBDIR)/libsignalr.so
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|; s|@VERSION@|$(VERSION)|' \
	  core/signalr.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/signalr.pc

$(BUILD)/test/%: core/test/%.c core/test/harness.h $(BUILD)/libsignalr.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Icore/test $< $(BUILD)/libsignalr.a $(LIBS) -o $@

# ---- Lua binding, one per Lua version ----
$(BUILD)/lua%/signalr/core.so: $(wildcard binding/*.c binding/*.h) $(BUILD)/libsignalr.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $$(pkg-config --cflags $(call lua_pc,$*)) -shared \
	  $(filter %.c,$^) $(BUILD)/libsignalr.a $(LIBS) -o $@

# ---- tests ----
test: deps all $(CTESTS)
	@bash .ci/test-all.sh

test-c: $(CTESTS)
	@set -e; for t in $(CTESTS); do $$t; done

# make test-lua V=5.4
test-lua: all
	@bash spec/run.sh $(or $(V),5.4) unit

test-e2e: all
	@bash spec/run.sh 5.4 e2e

test-nginx: all
	@bash spec/run.sh 5.4 nginx

# the game-server benchmarks of issue 6 (results in bench/RESULTS.md)
bench: deps all
	@cd bench && [ -d node_modules/jsonwebtoken ] || npm ci --no-audit --no-fund --loglevel=error
	@bash bench/run.sh
	@bash bench/cpu.sh
	@bash bench/persistent.sh
	@bash bench/hub_server.sh
	@bash bench/hub_load.sh

# wrk: an nginx handler calling hub:broadcast vs the same handler without
# the call, in one run; results in bench/RESULTS.md
bench-nginx: deps all
	@bash bench/nginx_broadcast.sh
	@bash bench/nginx_ir.sh

# the API reference (LDoc) in $(BUILD)/docs; any warning fails
docs:
	@out=$$(ldoc . 2>&1 | grep -v -E '^(reading configuration|output written)'); \
	  if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "docs: $(BUILD)/docs/index.html"

lint:
	luacheck --quiet lua spec emulator bin examples

# C tests and the 5.4 unit specs under ASan + UBSan (LD_PRELOAD: the Lua
# interpreter itself is not instrumented).
asan: all
	$(MAKE) BUILD=build/asan LUAS=5.4 \
	  SAN="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  all test-c
	SIGNALR_BUILD=build/asan \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp \
	  bash spec/run.sh 5.4 unit

# libFuzzer harnesses (fuzz/), each for FUZZ_SECONDS over its seeds
FUZZ_SECONDS ?= 6
fuzz:
	@bash fuzz/run.sh $(FUZZ_SECONDS) $(BUILD)
fuzz-long:
	@bash fuzz/run.sh $(or $(FUZZ_SECONDS),600) $(BUILD)

# every C test under valgrind: any error or definitely/indirectly lost byte fails
valgrind: $(CTESTS)
	@set -e; for t in $(CTESTS); do \
	  valgrind -q --error-exitcode=99 --leak-check=full \
	    --errors-for-leak-kinds=definite,indirect $$t > /dev/null; \
	  echo "valgrind $$(basename $$t): clean"; done

# static analysis of the C code
static:
	cppcheck --quiet --enable=warning,performance,portability --std=c99 \
	  --error-exitcode=1 --inline-suppr -Icore/include -Icore/src \
	  core/src binding fuzz examples/c

demo: deps all
	@bash examples/demo.sh

# the game server of examples/game_server.lua behind the emulator (Default
# mode), with two real JS clients for a few seconds
demo-server: deps all
	@SIGNALR_BUILD=$(BUILD) bash examples/game_server.sh

# Build and install the rocks into a private tree (offline).
rock:
	luarocks --lua-version=5.4 make --deps-mode=none --tree $(BUILD)/rocks \
	  rockspec/lua-signalr-dev-1.rockspec
	luarocks --lua-version=5.4 make --deps-mode=none --tree $(BUILD)/rocks \
	  rockspec/signalr-emulator-dev-1.rockspec

# The release, offline, from the last commit: source tarball, .src.rock and
# a binary rock for Lua 5.4 in $(BUILD)/dist.
dist:
	rm -rf $(BUILD)/dist && mkdir -p $(BUILD)/dist
	git archive --format=tar.gz --prefix=lua-signalr-$(VERSION)/ \
	  -o $(BUILD)/dist/lua-signalr-$(VERSION).tar.gz HEAD
	cp rockspec/lua-signalr-$(VERSION)-1.rockspec $(BUILD)/dist/
	@# a .src.rock is a zip of the rockspec and the tarball it names
	cd $(BUILD)/dist && python3 -m zipfile -c lua-signalr-$(VERSION)-1.src.rock \
	  lua-signalr-$(VERSION)-1.rockspec lua-signalr-$(VERSION).tar.gz
	cd $(BUILD)/dist && luarocks --lua-version=5.4 build --deps-mode=none \
	  --tree tree lua-signalr-$(VERSION)-1.src.rock >/dev/null && \
	  luarocks --lua-version=5.4 pack --tree tree lua-signalr $(VERSION)-1
	rm -rf $(BUILD)/dist/tree
	@ls $(BUILD)/dist

emulator: deps all
	bin/signalr-emulator

clean:
	rm -rf build
