# lua-signalr build, tests and tools.  `make test` is what CI runs.
CC      ?= cc
AR      ?= ar
LUAS    ?= 5.4 5.1 5.3 jit
WARN     = -std=c99 -pedantic -Wall -Wextra -Wshadow -Wwrite-strings \
           -Wstrict-prototypes -Wmissing-prototypes -Wswitch-enum
CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
ALLCFLAGS = $(WARN) $(WERROR) $(CFLAGS) -fPIC -fvisibility=hidden \
            -Icore/include -Icore/src
LIBS     = -lcurl -lcrypto
BUILD   ?= build

CORE_SRC = $(wildcard core/src/*.c)
CORE_OBJ = $(CORE_SRC:core/src/%.c=$(BUILD)/core/%.o)
CTESTS   = $(patsubst core/test/%.c,$(BUILD)/test/%,$(filter-out core/test/harness.c,$(wildcard core/test/test_*.c)))

.PHONY: all core test test-c clean
all: core

core: $(BUILD)/libsignalr.a

$(BUILD)/core/%.o: core/src/%.c core/include/signalr.h $(wildcard core/src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(BUILD)/libsignalr.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/test/%: core/test/%.c core/test/harness.h $(BUILD)/libsignalr.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Icore/test $< $(BUILD)/libsignalr.a $(LIBS) -o $@

test-c: $(CTESTS)
	@set -e; for t in $(CTESTS); do $$t; done

clean:
	rm -rf $(BUILD)
