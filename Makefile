# softlabel - the only build entry. Objects go to build/, binaries to build/bin/.
#
#   make            build the library, programs and tests
#   make test       install missing packages, build, run every test
#   make check      the same under ASan + UBSan (build/asan/)
#   make bench      benchmarks: figures and ratios, never thresholds
#   make bench-scale  the scale figures (tests/bench/scale.sh; minutes)
#   make demo       the whole system end to end on Fashion-MNIST
#   make deps       install missing Debian packages (deploy/deps.sh)
#   make fuzz       libFuzzer targets, each run FUZZ_SECONDS (60) seconds
#   make install    PREFIX=/usr/local DESTDIR= (programs, libsoftlabel.so and
#                   .a, headers, softlabel.pc, man pages, Python package)
#   make uninstall  the same variables: removes what install put there

.DEFAULT_GOAL := all

PREFIX  ?= /usr/local
DESTDIR ?=
VERSION := 0.1.0

CC      ?= cc
BUILD   ?= build
SAN     ?=

PKGS    := libzmq msgpack lmdb openblas cmocka zlib libcjson libsodium \
           libprotobuf-c libmicrohttpd
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wdouble-promotion -Wformat=2 -Wvla
ifeq ($(CI),true)
WARN    += -Werror
endif
OPT     ?= -O2 -g
# Vectorize the element-wise loops (Adam, input conversion) at -O2: GCC 12's
# default "very-cheap" model skips any loop that needs an epilogue, and
# sqrtf under the default -fmath-errno is a call that blocks vectorizing.
# Neither flag changes a result: no errno is read after a math call,
# vector sqrt and divide are correctly rounded like the scalar ones, and
# float reductions stay in order (no -fassociative-math, unlike -ffast-math).
VEC     := -fno-math-errno -fvect-cost-model=cheap
# -fPIC: the same objects make libsoftlabel.a and libsoftlabel.so (the
# default PIE code is nearly as costly on x86-64, and cannot go into a .so).
CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) $(VEC) $(WARN) -fPIC \
           -DSL_VERSION='"$(VERSION)"' -Icommon -Icommon/graph -Icommon/nn -I$(BUILD)/gen \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SAN)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread
LDFLAGS := $(SAN)

LIB_SRC := $(wildcard common/*.c common/graph/*.c common/nn/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx.pb-c.o

# ONNX's protobuf schema as Debian's libonnx-dev ships it; protoc-c turns it
# into C at build time (nothing generated is kept in the tree).
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
GEN_ONNX   := $(BUILD)/gen/onnx.pb-c.h
LIB     := $(BUILD)/lib/libsoftlabel.a
# The shared library: soname libsoftlabel.so.$(SOVER), bumped when the ABI
# breaks; linked against what its objects use (not cmocka: tests only).
SOVER   := 0
SONAME  := libsoftlabel.so.$(SOVER)
SOLIB   := $(BUILD)/lib/libsoftlabel.so.$(VERSION)
LIB_PKGS := $(filter-out cmocka,$(PKGS))
SO_LDLIBS := $(shell pkg-config --libs $(LIB_PKGS) 2>/dev/null) -lm -lpthread

# Programs: directory, binary, main file. A directory's other .c files form
# its own archive, linked into each of its programs and into the unit tests.
PROGS   := student-trainer:softlabel-student:main \
           broker:softlabel-broker:main \
           broker:softlabel:admin \
           teacher-worker:softlabel-teacher:main
PROG_DIRS := $(sort $(foreach p,$(PROGS),$(word 1,$(subst :, ,$(p)))))
MAINS   := $(foreach p,$(PROGS),$(word 1,$(subst :, ,$(p)))/$(word 3,$(subst :, ,$(p))).c)
define dir_rules
$(1)_SRC := $$(filter-out $(MAINS),$$(wildcard $(1)/*.c))
$(1)_OBJ := $$($(1)_SRC:%.c=$(BUILD)/obj/%.o)
$(1)_LIB := $(BUILD)/lib/lib$(1).a
$$($(1)_LIB): $$($(1)_OBJ)
	@mkdir -p $$(@D)
	rm -f $$@
	$$(AR) rcs $$@ $$^
PROG_LIBS += $$($(1)_LIB)
endef
$(foreach d,$(PROG_DIRS),$(eval $(call dir_rules,$(d))))
define prog_rules
$(BUILD)/bin/$(2): $(BUILD)/obj/$(1)/$(3).o $$($(1)_LIB) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
BINS += $(BUILD)/bin/$(2)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rules,$(word 1,$(subst :, ,$(p))),$(word 2,$(subst :, ,$(p))),$(word 3,$(subst :, ,$(p))))))

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BINS:= $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

# Man pages: made from each program's --help when it is built
# (deploy/manpage.sh), so they cannot drift from the option tables.
MANS    := $(BINS:$(BUILD)/bin/%=$(BUILD)/man/%.1) $(BUILD)/man/softlabel-serve.1
MAN_DESC_softlabel-broker  := lease shards of a dataset to teacher workers and commit their soft labels into the logit cache
MAN_DESC_softlabel-teacher := run a teacher model over shards leased from softlabel-broker and send back soft labels
MAN_DESC_softlabel-student := train a student network, supervised or distilled from the logit cache; evaluate and export models
MAN_DESC_softlabel         := status, inspect, verify, get and export a logit cache; keygen; doctor
MAN_DESC_softlabel-serve   := answer reads of a logit cache for students on other hosts

.SECONDARY:
.PHONY: all test unit integration check bench bench-scale demo deps install uninstall clean fuzz fuzz-build
all: $(LIB) $(SOLIB) $(BINS) $(MANS) $(UNIT_BINS) $(BENCH_BINS)

# Objects depend on OBJ_FORMAT: changed when this Makefile changes how
# every object must be compiled (pic1: -fPIC for libsoftlabel.so), so a
# tree built before rebuilds them all once. (Not the whole CFLAGS: make
# install BUILD=build/asan, without SAN, must not recompile a sanitizer tree.)
OBJ_FORMAT   := pic1
CFLAGS_STAMP := $(BUILD)/.obj-format
ifneq ($(file < $(CFLAGS_STAMP)),$(OBJ_FORMAT))
$(shell mkdir -p $(BUILD))
$(file > $(CFLAGS_STAMP),$(OBJ_FORMAT))
endif

$(BUILD)/obj/%.o: %.c $(CFLAGS_STAMP) | $(GEN_ONNX)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/onnx.pb-c.c $(GEN_ONNX) &: $(ONNX_PROTO)
	@mkdir -p $(@D)
	protoc-c --c_out=$(@D) -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

# Generated code: compiled without our warning flags (it is not ours to fix).
$(BUILD)/obj/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c $(CFLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) -std=c11 $(OPT) $(SAN) -fPIC -w -I$(BUILD)/gen \
		$(shell pkg-config --cflags libprotobuf-c 2>/dev/null) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

# -z defs: every symbol the library uses comes from a library it names
# (not checkable under the sanitizers, whose runtime the program brings).
$(SOLIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--as-needed \
		$(if $(SAN),,-Wl,-z,defs) -o $@ $^ $(SO_LDLIBS)
	ln -sf $(notdir $@) $(@D)/$(SONAME)
	ln -sf $(SONAME) $(@D)/libsoftlabel.so

$(BUILD)/man/%.1: $(BUILD)/bin/% deploy/manpage.sh
	@mkdir -p $(@D)
	sh deploy/manpage.sh $< $* $(VERSION) "$(MAN_DESC_$*)" >$@.tmp
	mv $@.tmp $@

# softlabel serve, a subcommand, has a page of its own.
$(BUILD)/man/softlabel-serve.1: $(BUILD)/bin/softlabel deploy/manpage.sh
	@mkdir -p $(@D)
	sh deploy/manpage.sh $< softlabel-serve $(VERSION) \
		"$(MAN_DESC_softlabel-serve)" serve >$@.tmp
	mv $@.tmp $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(PROG_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The op tests that share the one-node harness (tests/unit/one_node.c).
ONE_NODE_TESTS := $(BUILD)/tests/test_op_eltwise $(BUILD)/tests/test_op_norm
$(ONE_NODE_TESTS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o \
    $(BUILD)/obj/tests/unit/one_node.o $(PROG_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ONNX conformance: tests/conformance/onnx_backend.c runs ONNX's backend
# test cases (libonnx-testdata) through the graph engine; a plain program,
# not cmocka, driven by tests/integration/onnx_conformance.sh.
CONF_BIN := $(BUILD)/bin-test/onnx_backend
all: $(CONF_BIN)
$(CONF_BIN): $(BUILD)/obj/tests/conformance/onnx_backend.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# view_dump: sl_view's views of raw rows, for python_views.sh to compare
# softlabel.views with.
VIEW_DUMP := $(BUILD)/bin-test/view_dump
all: $(VIEW_DUMP)
$(VIEW_DUMP): $(BUILD)/obj/tests/conformance/view_dump.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# `make test` installs what is missing first, then builds and runs everything.
deps:
	@sh deploy/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tests/run.sh

unit: all
	@BUILD=$(BUILD) sh tests/run.sh unit

integration: all
	@BUILD=$(BUILD) sh tests/run.sh integration

# Sanitizer build: separate tree, same tests. Leak checking stays on.
check: deps
	@$(MAKE) --no-print-directory all BUILD=build/asan OPT='-O1 -g -fno-omit-frame-pointer' \
		SAN='-fsanitize=address,undefined -fno-sanitize-recover=all'
	@BUILD=build/asan SL_SANITIZED=1 \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		sh tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@# bench_broker needs a running broker (bench_label.sh drives it),
	@# bench_reader a running softlabel serve (bench_serve.sh),
	@# bench_graph a model (bench_onnx.sh); bench_nn.sh runs bench_nn and
	@# PyTorch side by side.
	@for b in $(filter-out $(BUILD)/bench/bench_broker $(BUILD)/bench/bench_graph $(BUILD)/bench/bench_nn $(BUILD)/bench/bench_reader,$(BENCH_BINS)); do \
		echo "== $$b"; $$b || exit 1; done
	@for s in tests/bench/bench_*.sh; do echo "== $$s"; \
		BUILD=$(BUILD) sh $$s || exit 1; done

# Scale figures (issue 13): minutes, GiBs of page cache; not in make bench.
bench-scale: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tests/bench/scale.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tests/demo.sh

# Fuzzing: libFuzzer targets (tests/fuzz/fuzz_*.c) built with clang into
# build/fuzz/ from the library sources compiled again with the fuzzer and
# sanitizer flags (the normal objects lack the coverage instrumentation).
# Each target runs FUZZ_SECONDS on a temporary copy of its seed corpus,
# FUZZ_JOBS at a time; any crash, leak or timeout fails (tests/fuzz/run.sh).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
                -O1 -g -fno-omit-frame-pointer $(WARN) -Werror \
                -DSL_VERSION='"$(VERSION)"' -Icommon -Icommon/graph -Icommon/nn \
                -I$(FUZZ_DIR)/gen -Istudent-trainer \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(FUZZ_SAN)
FUZZ_LIB_SRC := $(LIB_SRC) student-trainer/checkpoint.c
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) \
                $(FUZZ_DIR)/obj/gen/onnx.pb-c.o
FUZZ_LIB     := $(FUZZ_DIR)/libsoftlabel-fuzz.a
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/%)

$(FUZZ_DIR)/obj/%.o: %.c | $(FUZZ_DIR)/gen/onnx.pb-c.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

# The ONNX parser generated again for this tree (fuzz builds need no
# normal build first), compiled without our warnings like $(BUILD)'s.
$(FUZZ_DIR)/gen/onnx.pb-c.c $(FUZZ_DIR)/gen/onnx.pb-c.h &: $(ONNX_PROTO)
	@mkdir -p $(@D)
	protoc-c --c_out=$(@D) -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

$(FUZZ_DIR)/obj/gen/onnx.pb-c.o: $(FUZZ_DIR)/gen/onnx.pb-c.c
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -O1 -g -w $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
		-I$(FUZZ_DIR)/gen $(shell pkg-config --cflags libprotobuf-c \
		2>/dev/null) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(LDLIBS)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) \
		sh tests/fuzz/run.sh $(notdir $(FUZZ_BINS))

# The Python package (common/python/softlabel) goes where Debian's python3
# looks: /usr/lib/python3/dist-packages for PREFIX=/usr (the packages' own
# place), $(PREFIX)/lib/python3.X/dist-packages otherwise (/usr/local's is
# on sys.path), X from /usr/bin/python3, or lib/python3/dist-packages where
# there is none to ask (the Docker build stage). PYTHON_DIR overrides.
PY_VER     := $(or $(shell /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null),3)
PYTHON_DIR ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/python3/dist-packages,$(PREFIX)/lib/python$(PY_VER)/dist-packages)
PY_SRC     := $(wildcard common/python/softlabel/*.py)

LIBDIR     ?= $(PREFIX)/lib
INCDIR     ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PUB_H      := $(wildcard common/sl_*.h)

# After installing into a system directory without DESTDIR, run ldconfig
# for the loader to find libsoftlabel.so.$(SOVER).
install: $(BINS) $(LIB) $(SOLIB) $(MANS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCDIR)/softlabel $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(SOLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SOLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsoftlabel.so
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(PUB_H) $(DESTDIR)$(INCDIR)/softlabel/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES@|$(LIB_PKGS)|' common/softlabel.pc.in \
	    >$(DESTDIR)$(LIBDIR)/pkgconfig/softlabel.pc
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/softlabel.pc
	install -m 0644 $(MANS) $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(PYTHON_DIR)/softlabel
	install -m 0644 $(PY_SRC) $(DESTDIR)$(PYTHON_DIR)/softlabel/

# Removes what install put there, and nothing else (directories only when
# empty).
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(BINS)))
	rm -f $(addprefix $(DESTDIR)$(LIBDIR)/,$(notdir $(SOLIB)) $(SONAME) \
		libsoftlabel.so $(notdir $(LIB)) pkgconfig/softlabel.pc)
	rm -f $(addprefix $(DESTDIR)$(INCDIR)/softlabel/,$(notdir $(PUB_H)))
	-rmdir $(DESTDIR)$(INCDIR)/softlabel 2>/dev/null
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MANS)))
	rm -f $(addprefix $(DESTDIR)$(PYTHON_DIR)/softlabel/,$(notdir $(PY_SRC)))
	rm -rf $(DESTDIR)$(PYTHON_DIR)/softlabel/__pycache__
	-rmdir $(DESTDIR)$(PYTHON_DIR)/softlabel 2>/dev/null

clean:
	rm -rf build
