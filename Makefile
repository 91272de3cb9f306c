# Thin wrapper over CMake: deps, configure, build, run, test.
#   make run    install missing packages (as root), build, predict the
#               default scenario and write its scaling chart
#   make test   the same set-up, then the whole test suite through ctest
BUILD    ?= build
SAN      ?= build-sanitize
TYPE     ?= RelWithDebInfo
WERROR   ?= OFF
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CMFLAGS  ?=
DNNSIM    = $(BUILD)/cli/dnnsim
OUTDIR   ?= out

.PHONY: all deps configure build run test test-sanitize ci check-memory \
        bench install clean fuzz format docs

all: build

deps:
	@./scripts/install-deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) \
	  -DDNNSIM_WERROR=$(WERROR) $(CMFLAGS)

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) \
	  -DDNNSIM_WERROR=$(WERROR) $(CMFLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(DNNSIM) predict scenarios/default.ini
	@mkdir -p $(OUTDIR)
	$(DNNSIM) plot scenarios/default.ini --kind scaling \
	  --vary cluster.nodes=1..16*2 -o $(OUTDIR)/default-scaling.png

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The suite once more under AddressSanitizer and UBSan (CI does this).
test-sanitize: deps
	cmake -S . -B $(SAN) -DCMAKE_BUILD_TYPE=Debug -DDNNSIM_SANITIZE=ON \
	  -DDNNSIM_WERROR=$(WERROR) $(CMFLAGS)
	cmake --build $(SAN) -j $(JOBS)
	cd $(SAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure \
	  -j $(JOBS) -LE gpu

# The suite under valgrind memcheck (docs/robustness.md): any memory error
# or definite/indirect leak fails the test. MPI and GPU tests are left out
# (their runtimes are not valgrind-clean), and so is the slow determinism
# test (it only runs `dnnsim` children, which valgrind does not follow;
# test-sanitize checks those). MEMCHECK_SKIP names tests without those
# labels that cannot run under valgrind: test_meas_mpi and
# test_meas_executor_mpi call MPI_Init even alone (OpenMPI leaks in
# components it unloads; under mpirun they are labelled mpi) and
# test_meas_dnnl's oneDNN JIT kernels outrun its timeout.
VALGRIND ?= valgrind
MEMCHECK_SKIP ?= ^test_meas_mpi$$|^test_meas_executor_mpi$$|^test_meas_dnnl$$
VGFLAGS  ?= --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite,indirect \
            --show-leak-kinds=definite,indirect --track-origins=yes \
            --suppressions=$(CURDIR)/tests/valgrind.supp
check-memory: build
	@./scripts/install-deps memcheck
	@command -v $(VALGRIND) >/dev/null || \
	  { echo "check-memory needs valgrind (apt-get install valgrind)"; exit 2; }
	cd $(BUILD) && ctest -T memcheck -LE 'gpu|mpi|slow' -j $(JOBS) \
	  -E '$(MEMCHECK_SKIP)' \
	  --output-on-failure --timeout 1800 \
	  --overwrite MemoryCheckCommand=$$(command -v $(VALGRIND)) \
	  --overwrite "MemoryCheckCommandOptions=$(strip $(VGFLAGS))"

# libFuzzer targets (tests/fuzz/), built with clang in their own tree and
# run FUZZ_TIME seconds each; crashes land in $(FUZZ_BUILD)/fuzz-artifacts.
FUZZ_BUILD   ?= build-fuzz
FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= scenario network profile kernels meas_csv
fuzz:
	@./scripts/install-deps fuzz
	@command -v clang >/dev/null || { echo "make fuzz needs clang and" \
	  "libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)"; \
	  exit 2; }
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 -DDNNSIM_FUZZ=ON \
	  -DDNNSIM_BUILD_TESTS=OFF -DDNNSIM_WITH_MPI=OFF \
	  -DDNNSIM_WITH_CUDA=OFF -DDNNSIM_WITH_DNNL=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) \
	  --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

ci:
	$(MAKE) test WERROR=ON
	$(MAKE) test-sanitize WERROR=ON
	$(MAKE) fuzz FUZZ_TIME=12

bench: build
	./bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(SAN) $(FUZZ_BUILD) $(OUTDIR)
