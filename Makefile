# dlt - one GNU Makefile: all, check, demo, install, clean, deps.
# Sources are found by wildcard, so adding a module, a tool or a test needs
# no edit here. libdlt by layer:
#   lib/{core,image,data,nn,eval}/*.c  -> libdlt.a / libdlt.so (lib/dlt/*.h:
#                                         the installed headers)
#   lib/backend/*.c lib/backend/ref/*.c -> the registry, the front and the
#                                         reference backend (always)
#   lib/backend/cpu/*.c                -> the oneDNN fast path, when oneDNN is
#                                         found (DNNL=1, DLT_HAVE_DNNL), with
#   lib/backend/cpu/simd/*.c           -> its loops once per x86 ISA (avx512,
#                                         avx2, sse2), picked at run time
#   lib/backend/cuda/*.cu,*.c          -> when CUDA is found (DLT_HAVE_CUDA)
#   bin/dlt-*.c               -> bin/dlt-*   (PATH=$PWD/bin:$PATH uses them)
#   tests/unit/test_*.c       -> build/tests/test_*  (TAP output)
#   tests/*.bats              -> run by tests/run.sh
SHELL := /bin/bash
PREFIX ?= /usr/local
CC ?= cc
OPT ?= -O2
CFLAGS ?= $(OPT) -g
CFLAGS += -MMD -MP -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fPIC -fopenmp -Ilib -I/usr/include/nifti
LDLIBS += -lnifti2 -lznz -lpng -lz -lm -lpthread -fopenmp
B := build
BIN := bin

# ---- make check SAN=1: everything built with ASan + UBSan (any error is
# fatal) in build/san, tools in build/san/bin, which the tests then run.
SAN ?= 0
ifeq ($(SAN),1)
B := build/san
BIN := $(B)/bin
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS += $(SAN_FLAGS)
LDLIBS += $(SAN_FLAGS)
endif

# ---- dependencies (Debian packages) ----
DEB_PKGS := libnifti2-dev zlib1g-dev bats libdnnl-dev libpng-dev gnuplot-nox
DEB_OPTIONAL := python3-nibabel python3-scipy python3-torch
missing = $(shell for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done)

# ---- MPI (data-parallel training, lib/core/dist.c): Open MPI from Debian;
# make MPI=0 builds without it (a world of one process) ----
MPI ?= 1
ifeq ($(MPI),1)
DEB_PKGS += libopenmpi-dev openmpi-bin
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
CFLAGS += -DDLT_HAVE_MPI $(MPI_CFLAGS)
LDLIBS += $(MPI_LIBS)
endif

MISSING := $(call missing,$(DEB_PKGS))

# ---- oneDNN (the CPU fast path, lib/backend/cpu): built where its headers
# are; make DNNL=0 leaves it out, and device "cpu" runs the reference loops ----
DNNL ?= $(if $(wildcard /usr/include/dnnl.h),1,0)
ifeq ($(DNNL),1)
CFLAGS += -DDLT_HAVE_DNNL
LDLIBS += -ldnnl
endif

# ---- CUDA detection ----
CUDA_HOME ?= /usr/local/cuda
CUDNN_HOME ?= $(CUDA_HOME)
NVCC := $(CUDA_HOME)/bin/nvcc
CUDNN_H := $(firstword $(wildcard $(CUDNN_HOME)/include/cudnn.h $(CUDNN_HOME)/include/*/cudnn.h))
ifeq ($(origin CUDA),undefined)
CUDA := $(if $(and $(wildcard $(NVCC)),$(CUDNN_H)),1,0)
endif
CUDA_SRC := $(wildcard lib/backend/cuda/*.cu)
ifeq ($(CUDA),1)
CUDNN_LIBDIR := $(firstword $(wildcard $(CUDNN_HOME)/lib64 $(CUDNN_HOME)/lib))
CFLAGS += -DDLT_HAVE_CUDA -I$(CUDA_HOME)/include -I$(dir $(CUDNN_H))
NVFLAGS ?= -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
	-Xcompiler -fPIC -Ilib -I$(dir $(CUDNN_H)) -DDLT_HAVE_CUDA
LDLIBS += -L$(CUDA_HOME)/lib64 -L$(CUDNN_LIBDIR) -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDNN_LIBDIR) -lcudnn -lcudart -lstdc++
CUDA_OBJ := $(CUDA_SRC:%.cu=$(B)/%.o)
endif

# ---- NCCL: the CUDA backend averages gradients on the GPUs under MPI
# (lib/backend/cuda/nccl.cu); without it through the host ----
ifeq ($(CUDA)$(MPI),11)
NCCL ?= $(if $(wildcard $(CUDA_HOME)/include/nccl.h),1,0)
ifeq ($(NCCL),1)
CFLAGS += -DDLT_HAVE_NCCL
NVFLAGS += -DDLT_HAVE_NCCL
LDLIBS += -lnccl
endif
endif

# The fast path's own loops (lib/backend/cpu/simd) are compiled once per ISA
# with -DFAST_ISA=name; each copy's symbols end in _name (fast_kern.h), and
# the backend picks one table of them when it starts, by cpuid capped by
# DLT_CPU_ISA or oneDNN's ONEDNN_MAX_CPU_ISA. On another architecture only
# the generic copy is built.
ifeq ($(shell $(CC) -dumpmachine | grep -c '^x86_64'),1)
SIMD_ISAS := avx512 avx2 sse2
else
SIMD_ISAS := generic
endif
ISA_FLAGS_avx512 := -mavx512f -mavx2 -mfma
ISA_FLAGS_avx2 := -mavx2 -mfma
ISA_FLAGS_sse2 :=
ISA_FLAGS_generic :=
ifeq ($(DNNL),1)
CPU_SRC := $(wildcard lib/backend/cpu/*.c)
SIMD_SRC := $(wildcard lib/backend/cpu/simd/*.c)
SIMD_OBJ := $(foreach i,$(SIMD_ISAS),$(SIMD_SRC:%.c=$(B)/%.$(i).o))
CFLAGS += -DFAST_ISAS='"$(SIMD_ISAS)"' $(foreach i,$(SIMD_ISAS),-DFAST_HAVE_$(i))
endif

LIB_SRC := $(wildcard lib/core/*.c lib/image/*.c lib/data/*.c lib/nn/*.c lib/eval/*.c lib/backend/*.c \
	lib/backend/ref/*.c) $(CPU_SRC) $(if $(filter 1,$(CUDA)),$(wildcard lib/backend/cuda/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(SIMD_OBJ) $(CUDA_OBJ)
LIB_HDR := $(wildcard lib/dlt/*.h)
TOOLS := $(patsubst bin/%.c,$(BIN)/%,$(wildcard bin/dlt-*.c))
UNIT := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
UNIT_HDR := $(wildcard tests/unit/*.h)
FUZZERS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
REPLAY := $(FUZZERS:%=$(B)/tests/replay_%)

.PHONY: all deps check demo install clean summary bench fuzz fuzz-deps fuzz-seeds san-tests
all: $(B)/libdlt.a $(B)/libdlt.so $(TOOLS) summary

summary: $(B)/libdlt.a $(TOOLS)
	@echo "dlt: built libdlt + $(words $(TOOLS)) tools; oneDNN fast path: $(if $(filter 1,$(DNNL)),yes,no); MPI: $(if $(filter 1,$(MPI)),yes,no (MPI=0)); CUDA: $(if $(filter 1,$(CUDA)),yes ($(CUDA_HOME); cudnn.h in $(dir $(CUDNN_H)); NCCL $(if $(filter 1,$(NCCL)),yes,no)),no$(if $(filter 0,$(CUDA)), (nvcc or cudnn.h not found under CUDA_HOME=$(CUDA_HOME) / CUDNN_HOME=$(CUDNN_HOME), or CUDA=0)))"

# Install what is missing: as root with apt-get, otherwise print the command.
# $(call install_pkgs,PACKAGES) is that as a recipe line.
install_pkgs = @m="$(call missing,$(1))"; \
	if [ -z "$$m" ]; then echo "dlt: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then echo "dlt: installing $$m"; \
	  (apt-get install -y -q $$m || (apt-get update -q && apt-get install -y -q $$m)) >&2; \
	else echo "dlt: missing packages; run: sudo apt-get install -y $$m"; exit 1; fi
deps:
	$(call install_pkgs,$(DEB_PKGS) $(DEB_OPTIONAL))

# Missing packages: make remakes this included file first (installing them)
# and then restarts, so every detection above sees the installed packages.
ifneq ($(strip $(MISSING)),)
ifeq ($(filter clean deps,$(MAKECMDGOALS)),)
include $(B)/deps.mk
endif
endif
$(B)/deps.mk: FORCE
	@if [ "$$(id -u)" = 0 ]; then echo "dlt: installing $(MISSING)" >&2; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(MISSING) || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(MISSING))) >&2 || exit 1; \
	else echo "dlt: missing packages; run: sudo apt-get install -y $(MISSING)" >&2; exit 1; fi
	@mkdir -p $(B) && echo "# packages installed $$(date)" > $@

# The flags every object was built with: a change (MPI=0, DNNL=0, CUDA=0,
# OPT=...) rewrites $(B)/flags, which every object depends on, so a build
# never mixes objects of two configurations.
FLAGS_NOW := $(CC) $(CFLAGS) | $(LDLIBS) | $(NVFLAGS)
ifneq ($(FLAGS_NOW),$(file < $(B)/flags))
$(shell mkdir -p $(B))
$(file > $(B)/flags,$(FLAGS_NOW))
endif

$(B)/%.o: %.c $(LIB_HDR) $(B)/flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

define simd_rule
$(B)/lib/backend/cpu/simd/%.$(1).o: lib/backend/cpu/simd/%.c $(LIB_HDR) $(B)/flags
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $(ISA_FLAGS_$(1)) -DFAST_ISA=$(1) -c $$< -o $$@
endef
$(foreach i,$(SIMD_ISAS),$(eval $(call simd_rule,$(i))))
# The Winograd products are multiply-adds: fused where the ISA has FMA
# (ISO C mode leaves GCC's contraction off, and GCC has no vector fma).
# Its vector helpers are static inline, so the psABI notes do not apply.
$(B)/lib/backend/cpu/simd/wino.%.o: CFLAGS += -ffp-contract=fast -Wno-psabi
# GCC vector types of 8 or 16 lanes in static functions: no ABI crosses a file
# (and in fast_softmax.h's inline helpers, for loss.c and ops.c)
$(B)/lib/backend/cpu/simd/norm.%.o $(B)/lib/backend/cpu/simd/dw.%.o $(B)/lib/backend/cpu/simd/loss.%.o \
  $(B)/lib/backend/cpu/simd/ops.%.o: CFLAGS += -Wno-psabi

$(B)/lib/backend/cuda/%.o: lib/backend/cuda/%.cu $(LIB_HDR) $(wildcard lib/backend/cuda/*.h lib/backend/cuda/*.cuh) $(B)/flags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(B)/libdlt.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libdlt.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(BIN)/dlt-%: bin/dlt-%.c $(B)/libdlt.a $(LIB_HDR) $(wildcard bin/*.h) $(B)/flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ibin $< -o $@ $(B)/libdlt.a $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libdlt.a $(LIB_HDR) $(UNIT_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $< -o $@ $(B)/libdlt.a $(LDLIBS)

# Benchmark programs: bench/NAME.c -> build/bench/NAME (built by the bench scripts).
$(B)/bench/%: bench/%.c $(B)/libdlt.a $(LIB_HDR) $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(B)/libdlt.a $(LDLIBS)

# The fuzz harnesses without libFuzzer: each replays its seed corpus and the
# inputs that once crashed it (tests/fuzz/{corpus,regress}/NAME) in make check.
$(B)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(B)/libdlt.a $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DFUZZ_NAME='"$*"' tests/fuzz/replay.c $< -o $@ $(B)/libdlt.a $(LDLIBS)

# Every test, unit and bats; ends with "N passed, N failed, N skipped".
# The unit tests and fuzz replays run a second time built with ASan + UBSan
# (build/san; CHECK_SAN=0 leaves them out): a library bug that the plain
# build survives by luck fails there. `make check SAN=1` runs everything,
# the tools and their bats tests included, under the sanitizers.
CHECK_SAN ?= $(if $(filter 1,$(SAN)),0,1)
SAN_TESTS := $(if $(filter 1,$(CHECK_SAN)),$(patsubst build/%,build/san/%,$(UNIT) $(REPLAY)))
check: all $(UNIT) $(REPLAY) $(if $(SAN_TESTS),san-tests)
	@DLT_TEST_BIN=$(abspath $(BIN)) DLT_SAN_EXTRA=$(if $(SAN_TESTS),1,0) tests/run.sh $(UNIT) $(REPLAY) $(SAN_TESTS)
san-tests:
	@$(MAKE) --no-print-directory SAN=1 $(SAN_TESTS)

# ---- fuzzing: make fuzz [FUZZ_TIME=seconds per harness, default 60]
# [FUZZ=nifti,model,...]. libFuzzer with ASan + UBSan (clang); the library's
# own C files are rebuilt for it under build/fuzz. New inputs collect in
# build/fuzz/corpus/NAME; a crash is written to build/fuzz/crash-NAME-* and
# ends the run non-zero (keep it in tests/fuzz/regress/NAME/ once fixed).
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ ?= $(FUZZERS)
comma := ,
FUZZ_CFLAGS := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wno-unknown-pragmas -Ilib -I/usr/include/nifti \
	-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIB_OBJ := $(patsubst %.c,$(B)/fuzz/%.o,$(wildcard lib/core/*.c lib/image/*.c lib/data/*.c lib/nn/*.c \
	lib/eval/*.c lib/backend/*.c lib/backend/ref/*.c))
$(B)/fuzz/lib/%.o: lib/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(B)/fuzz/libdlt.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(B)/fuzz/libdlt.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(B)/fuzz/libdlt.a -lnifti2 -lznz -lpng -lz -lm
FUZZ_PKGS := clang libclang-rt-dev
fuzz-deps:
	$(call install_pkgs,$(FUZZ_PKGS))
$(FUZZERS:%=$(B)/fuzz/fuzz_%) $(FUZZ_LIB_OBJ): | fuzz-deps
fuzz: $(FUZZERS:%=$(B)/fuzz/fuzz_%)
	@for n in $(subst $(comma), ,$(FUZZ)); do \
	  mkdir -p $(B)/fuzz/corpus/$$n tests/fuzz/regress/$$n; \
	  echo "fuzz: $$n for $(FUZZ_TIME) s"; \
	  $(B)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(B)/fuzz/crash-$$n- $(B)/fuzz/corpus/$$n tests/fuzz/corpus/$$n tests/fuzz/regress/$$n \
	    2> $(B)/fuzz/$$n.log || { tail -40 $(B)/fuzz/$$n.log; exit 1; }; \
	  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' $(B)/fuzz/$$n.log; \
	done

# The seed corpus (tests/fuzz/corpus), remade from our own tools' output.
fuzz-seeds: all
	tests/fuzz/mkseeds.sh

demo: all
	@$(MAKE) --no-print-directory -C pipelines/demo

bench: all
	@bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/dlt \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(B)/libdlt.a $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(B)/libdlt.so $(DESTDIR)$(PREFIX)/lib
	install -m 644 $(LIB_HDR) $(DESTDIR)$(PREFIX)/include/dlt
	install -m 644 $(wildcard man/man1/*.1) $(DESTDIR)$(PREFIX)/share/man/man1
	$(if $(wildcard man/man5/*.5),install -m 644 $(wildcard man/man5/*.5) $(DESTDIR)$(PREFIX)/share/man/man5)

# Header dependencies written by -MMD (private headers included).
-include $(wildcard $(LIB_OBJ:.o=.d) $(B)/tests/*.d $(BIN)/*.d)

clean:
	rm -rf $(B) $(TOOLS)

FORCE:
.PHONY: FORCE
