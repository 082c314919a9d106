# emberd build. Plain GNU make: sources are found by directory, so adding a module is adding a
# file. Variants: release objects in build/rel (bin/), sanitized objects in build/asan (tests and
# the daemon the end-to-end tests run), libFuzzer objects in build/fuzz (clang).
#
#   make            binaries: bin/emberd bin/emberd-init bin/emberctl bin/ember-vm
#   make images     guest kernel, initramfs and language packs into $(IMAGES_DIR)
#   make pack NAME=x  one language pack (rootfs/packs/x/pack.json; docs/packs.md)
#   make test       everything `.ci/run` runs: deps, build, images, unit, fuzz smoke, e2e
#   make run        deps, build, images, then the daemon on 127.0.0.1:7777
#   make fuzz       each fuzz target for FUZZ_SECONDS
#   make lint       source rules a compiler cannot check (scripts/lint.sh), and the OpenAPI lint
#   make spec-lint  docs/openapi.yaml through redocly lint (tools/openapi, pinned; npm ci by deps)
#   make tsan       ThreadSanitizer build of the host programs and unit tests, and the unit run
#   make bench      benchmarks (not part of make test)
#   make install    binaries, the image build tree, man pages, docs, the systemd unit and the
#                   config file under PREFIX (default /usr/local) and DESTDIR (docs/operations.md
#                   "Install as a service")
#   make deb        the Debian package (debian/), built from a copy in build/deb

VERSION := 0.1.0
IMAGES_DIR ?= /var/lib/emberd/images
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
# Debian's python3 (a python3 earlier on PATH may be a pyenv shim without python3-jsonschema).
PYTHON ?= /usr/bin/python3

CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
CLANG ?= clang

PKG_LIBS := libmicrohttpd jansson libcurl libcrypto inih libnftables
PKG_CFLAGS := $(shell pkg-config --cflags $(PKG_LIBS) 2>/dev/null)
PKG_LDLIBS := $(shell pkg-config --libs $(PKG_LIBS) 2>/dev/null)

# snprintf truncation is handled where it matters (return values checked), so gcc's guesses
# about it are noise; clang does not know the option.
WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
GCC_ONLY_WARN := -Wno-format-truncation
IS_CLANG := $(shell $(CC) --version 2>/dev/null | grep -q clang && echo yes)
BASE_CFLAGS_NOWARN := -std=c17 -D_GNU_SOURCE -DEMBER_VERSION='"$(VERSION)"' -Isrc -g -pthread \
	$(PKG_CFLAGS)
BASE_CFLAGS := $(BASE_CFLAGS_NOWARN) $(WARN) $(if $(IS_CLANG),,$(GCC_ONLY_WARN))
REL_CFLAGS := $(BASE_CFLAGS) -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
# ThreadSanitizer for the threaded host code (daemon, channel, manager, pool, templates).
TSAN_CFLAGS := $(BASE_CFLAGS) -O1 -fsanitize=thread -fno-omit-frame-pointer
FUZZ_CFLAGS := $(BASE_CFLAGS_NOWARN) $(WARN) -O1 -fsanitize=fuzzer-no-link,address,undefined \
	-fno-omit-frame-pointer -DEMBER_FUZZING

UTIL_SRC := $(wildcard src/util/*.c)
PROTO_SRC := $(wildcard src/proto/*.c)
GUEST_SRC := $(wildcard src/guest/*.c)
HOST_SRC := $(wildcard src/api/*.c src/sandbox/*.c src/vmm/*.c src/channel/*.c src/client/*.c \
	src/net/*.c src/e2b/*.c)
COMMON_SRC := $(UTIL_SRC) $(PROTO_SRC)

EMBERD_SRC := $(wildcard cmd/emberd/*.c)
INIT_SRC := $(wildcard cmd/emberd-init/*.c)
CTL_SRC := $(wildcard cmd/emberctl/*.c)
VMTOOL_SRC := $(wildcard cmd/ember-vm/*.c)

# cmd/emberd's modules but its main, for the tests of its option table and config file.
EMBERD_LIB_SRC := $(filter-out cmd/emberd/main.c,$(EMBERD_SRC))

UNIT_TESTS := $(patsubst tests/unit/%.c,build/asan/tests/%,$(wildcard tests/unit/test_*.c))
# Under TSan: the unit tests of the host modules (the guest's are single-threaded and fork).
TSAN_UNIT_TESTS := $(patsubst tests/unit/%.c,build/tsan/tests/%,\
	$(filter-out tests/unit/test_guest_%.c,$(wildcard tests/unit/test_*.c)))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

rel = $(patsubst %.c,build/rel/%.o,$(1))
asan = $(patsubst %.c,build/asan/%.o,$(1))
fuzz = $(patsubst %.c,build/fuzz/%.o,$(1))
tsan = $(patsubst %.c,build/tsan/%.o,$(1))

BINARIES := bin/emberd bin/emberd-init bin/emberctl bin/ember-vm

.PHONY: all deps images pack test unit e2e fuzz fuzz-smoke run bench clean asan-bins help lint \
	tsan tsan-bins tsan-unit spec-lint man install deb
.DEFAULT_GOAL := all

all: $(BINARIES)

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

# V=1 shows full command lines.
Q := $(if $(V),,@)

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(REL_CFLAGS) -MMD -MP -c $< -o $@

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@

build/tsan/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TSAN    $@")
	$(Q)$(CC) $(TSAN_CFLAGS) -MMD -MP -c $< -o $@

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CLANG   $@")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

# The guest agent carries its Python and JavaScript scripts (.incbin, which -MMD does not see).
GUEST_SCRIPTS := $(wildcard src/guest/scripts/*.py src/guest/scripts/*.js)
build/rel/src/guest/scripts.o build/asan/src/guest/scripts.o build/tsan/src/guest/scripts.o \
build/fuzz/src/guest/scripts.o: $(GUEST_SCRIPTS)

bin/emberd: $(call rel,$(EMBERD_SRC) $(HOST_SRC) $(COMMON_SRC))
	@mkdir -p bin
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(REL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LDLIBS)

bin/emberctl: $(call rel,$(CTL_SRC) $(HOST_SRC) $(COMMON_SRC))
	@mkdir -p bin
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(REL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LDLIBS)

bin/ember-vm: $(call rel,$(VMTOOL_SRC) $(HOST_SRC) $(COMMON_SRC))
	@mkdir -p bin
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(REL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LDLIBS)

# The guest's PID 1: static, so the initramfs needs nothing but this file and kernel modules.
bin/emberd-init: $(call rel,$(INIT_SRC) $(GUEST_SRC) $(COMMON_SRC))
	@mkdir -p bin
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(REL_CFLAGS) $(LDFLAGS) -static -o $@ $^ -l:libjansson.a

# Sanitized builds of the same programs, for the tests.
build/asan/bin/emberd: $(call asan,$(EMBERD_SRC) $(HOST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LDLIBS)

build/asan/bin/ember-vm: $(call asan,$(VMTOOL_SRC) $(HOST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LDLIBS)

build/asan/bin/emberctl: $(call asan,$(CTL_SRC) $(HOST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LDLIBS)

# The guest agent built for the host, to test exec handling without a VM (--agent-only mode).
build/asan/bin/emberd-init: $(call asan,$(INIT_SRC) $(GUEST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LDLIBS)

# The daemon under ThreadSanitizer, for the concurrent end-to-end test (tests/e2e/test_tsan.py).
build/tsan/bin/emberd: $(call tsan,$(EMBERD_SRC) $(HOST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(TSAN_CFLAGS) -o $@ $^ $(PKG_LDLIBS)

build/tsan/tests/%: tests/unit/%.c $(call tsan,$(HOST_SRC) $(GUEST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(TSAN_CFLAGS) -Itests/unit -o $@ $^ $(PKG_LDLIBS) -lcmocka

tsan-bins: build/tsan/bin/emberd

# halt_on_error: a race fails the run instead of scrolling past.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"

tsan-unit: $(TSAN_UNIT_TESTS)
	@set -e; for t in $(TSAN_UNIT_TESTS); do echo "== $$t (tsan)"; $(TSAN_ENV) $$t; done

tsan: tsan-bins tsan-unit

asan-bins: build/asan/bin/emberd build/asan/bin/ember-vm build/asan/bin/emberctl \
	build/asan/bin/emberd-init

# Unit tests link every library module (not the entry points) with cmocka, sanitized.
build/asan/tests/%: tests/unit/%.c $(call asan,$(HOST_SRC) $(GUEST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ASAN_CFLAGS) -Itests/unit -o $@ $^ $(PKG_LDLIBS) -lcmocka

build/fuzz/%: tests/fuzz/%.c $(call fuzz,$(HOST_SRC) $(GUEST_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LDLIBS)

# The config file's unit test and fuzz target load into emberd's own option table.
build/asan/tests/test_emberd_config: $(call asan,$(EMBERD_LIB_SRC))
build/tsan/tests/test_emberd_config: $(call tsan,$(EMBERD_LIB_SRC))
build/fuzz/fuzz_emberd_config: $(call fuzz,$(EMBERD_LIB_SRC))

# The MCP target runs on a stub manager (tests/fuzz/stub_manager.c: no VMs): the other modules
# come from an archive without manager.c, so only those the MCP server reaches are linked.
build/fuzz/libhost_stubbed.a: $(call fuzz,$(filter-out src/sandbox/manager.c,$(HOST_SRC)) \
		$(GUEST_SRC) $(COMMON_SRC))
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^
build/fuzz/fuzz_api_mcp build/fuzz/fuzz_e2b_route: build/fuzz/%: tests/fuzz/%.c \
		build/fuzz/tests/fuzz/stub_manager.o build/fuzz/libhost_stubbed.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LDLIBS)

deps:
	scripts/install-deps.sh

# Every pack of rootfs/packs/ (each smoke-tested in a VM by bin/ember-vm before it is published).
images: bin/emberd-init bin/ember-vm
	IMAGES_DIR=$(IMAGES_DIR) rootfs/build.sh

# One pack: make pack NAME=node (the kernel and initramfs are built too if missing or stale).
pack: bin/emberd-init bin/ember-vm
	@test -n "$(NAME)" || { echo "usage: make pack NAME=<a directory of rootfs/packs/>" >&2; exit 2; }
	IMAGES_DIR=$(IMAGES_DIR) PACKS=$(NAME) rootfs/build.sh

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

fuzz-smoke: $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$$(basename $$t); mkdir -p build/fuzz/corpus/$$name; \
		echo "== $$name ($(FUZZ_SMOKE_SECONDS)s)"; \
		$$t -max_total_time=$(FUZZ_SMOKE_SECONDS) -print_final_stats=0 \
			build/fuzz/corpus/$$name tests/fuzz/seeds/$$name 2>&1 | tail -n 2; \
		test $${PIPESTATUS[0]} -eq 0; \
	done

fuzz: $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$$(basename $$t); mkdir -p build/fuzz/corpus/$$name; \
		echo "== $$name ($(FUZZ_SECONDS)s)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus/$$name tests/fuzz/seeds/$$name; \
	done

lint: spec-lint
	scripts/lint.sh

# The linter's rules: tools/openapi/redocly.yaml. No telemetry, no update check.
REDOCLY := tools/openapi/node_modules/.bin/redocly
spec-lint:
	@test -x $(REDOCLY) || { echo "spec-lint: $(REDOCLY) is missing: run scripts/install-deps.sh" \
		"(npm ci in tools/openapi)" >&2; exit 1; }
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_NOTIFICATIONS=true $(REDOCLY) lint \
		--config tools/openapi/redocly.yaml docs/openapi.yaml

# Every request and response of the suite is checked against docs/openapi.yaml
# (tests/e2e/contract.py, through harness.Daemon.request).
e2e: all asan-bins tsan-bins
	IMAGES_DIR=$(IMAGES_DIR) $(PYTHON) -m unittest discover -v -s tests/e2e -p 'test_*.py'

# The one command CI and newcomers run: sets up everything, then every test.
NPROC := $(shell nproc 2>/dev/null || echo 2)

test:
	scripts/install-deps.sh
	$(MAKE) lint
	$(MAKE) -j$(NPROC) all asan-bins tsan-bins $(UNIT_TESTS) $(TSAN_UNIT_TESTS) $(FUZZ_TARGETS)
	$(MAKE) images
	$(MAKE) unit
	$(MAKE) tsan-unit
	$(MAKE) fuzz-smoke
	$(MAKE) e2e

run:
	scripts/serve.sh

bench: all
	IMAGES_DIR=$(IMAGES_DIR) bench/run.sh

# Installed layout (docs/operations.md "Install as a service"). The daemon's own defaults
# already are the installed paths (/var/lib/emberd/images, /run/emberd, /etc/emberd/emberd.conf), so
# the installed unit starts it without flags. LIBDIR holds the image build tree laid out as in
# the checkout (bin/ beside rootfs/), because rootfs/build.sh, smoke.py and `emberctl pack` find
# emberd-init, ember-vm and packctl.py relative to themselves; emberctl is linked into BINDIR
# from there (it resolves /proc/self/exe, so the link finds the tree).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib/emberd
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/emberd
# emberd reads /etc/emberd/emberd.conf whatever the PREFIX (cmd/emberd/config.h).
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# What the image build reads at run time: its scripts, the pack specs and their helpers.
ROOTFS_FILES := $(filter-out %/__pycache__/%,$(shell find rootfs -type f ! -name '*.pyc' | sort))
DOC_FILES := README.md $(wildcard docs/*.md) docs/openapi.yaml docs/emberd.conf.example

# Man pages from --help (help2man; the programs' --help is the reference docs/operations.md is
# tested against, so the pages cannot drift from it).
man: build/man/emberd.8 build/man/emberctl.1

build/man/emberd.8: bin/emberd packaging/emberd.h2m
	@mkdir -p $(dir $@)
	help2man --no-info --section=8 --no-discard-stderr --include=packaging/emberd.h2m \
		--name="runs untrusted code in microVMs behind a local HTTP API" -o $@ bin/emberd

build/man/emberctl.1: bin/emberctl packaging/emberctl.h2m
	@mkdir -p $(dir $@)
	help2man --no-info --section=1 --no-discard-stderr --include=packaging/emberctl.h2m \
		--name="command-line client of emberd" -o $@ bin/emberctl

# The paths the installed files name (unit, helper), filled in at install time.
INSTALL_SUBST := sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'

install: all man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR)/bin \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/docs \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/emberd
	install -m 0755 bin/emberd $(DESTDIR)$(SBINDIR)/emberd
	install -m 0755 bin/emberctl bin/ember-vm bin/emberd-init $(DESTDIR)$(LIBDIR)/bin/
	ln -sfn $$(realpath -m --relative-to=$(BINDIR) $(LIBDIR)/bin/emberctl) \
		$(DESTDIR)$(BINDIR)/emberctl
	@set -e; for f in $(ROOTFS_FILES); do \
		if [ -x $$f ]; then mode=0755; else mode=0644; fi; \
		install -D -m $$mode $$f $(DESTDIR)$(LIBDIR)/$$f; \
	done
	$(INSTALL_SUBST) packaging/emberd-setup-images.in >$(DESTDIR)$(SBINDIR)/emberd-setup-images
	chmod 0755 $(DESTDIR)$(SBINDIR)/emberd-setup-images
	$(INSTALL_SUBST) packaging/emberd.service.in >$(DESTDIR)$(SYSTEMDUNITDIR)/emberd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/emberd.service
	install -m 0644 build/man/emberd.8 packaging/emberd-setup-images.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 build/man/emberctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(filter docs/%,$(DOC_FILES)) $(DESTDIR)$(DOCDIR)/docs/
	@# An existing config file is the operator's: never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/emberd/emberd.conf || \
		install -m 0644 docs/emberd.conf.example $(DESTDIR)$(SYSCONFDIR)/emberd/emberd.conf

# dpkg-buildpackage writes ../*.deb and cleans its tree: it runs on a copy in DEB_DIR.
DEB_DIR ?= build/deb
deb:
	scripts/build-deb.sh $(DEB_DIR)

clean:
	rm -rf build bin

SHELL := /bin/bash
# Keep object files make considers intermediate (pattern-rule chains).
.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
