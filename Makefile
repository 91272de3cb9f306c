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

ci:
	$(MAKE) test WERROR=ON
	$(MAKE) test-sanitize WERROR=ON

bench: build
	./bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(SAN) $(OUTDIR)
