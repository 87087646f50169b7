# Convenience wrapper around CMake, in the manner of Neovim's top-level Makefile.
#   make run    install what is missing, build, run the main example workflow
#   make test   install what is missing, build, run every test (also under ASan+UBSan)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
EXAMPLE    ?= examples/support-triage.lua

.PHONY: all deps test-deps build run test test-unit test-lua test-e2e test-asan bench format clean

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: deps
	@$(MAKE) --no-print-directory build
	$(BUILD)/agentflow run $(EXAMPLE)

test: test-deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory test-unit test-lua test-e2e test-asan

test-unit:
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-lua:
	luajit /usr/bin/busted --helper=spec/helpers.lua spec/lua

test-e2e:
	AGENTFLOW_BIN=$(abspath $(BUILD))/agentflow luajit /usr/bin/busted --helper=spec/helpers.lua spec/integration

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DAF_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)
	# the server's specs once more against the sanitized binary: the worker, the API and the
	# store writer run only there
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	AGENTFLOW_BIN=$(abspath $(ASAN_BUILD))/agentflow luajit /usr/bin/busted --helper=spec/helpers.lua \
	  spec/integration/serve_spec.lua spec/integration/durability_spec.lua \
	  spec/integration/webhooks_spec.lua spec/integration/api_spec.lua \
	  spec/integration/schedules_spec.lua spec/integration/events_spec.lua \
	  spec/integration/polls_spec.lua spec/integration/plugin_triggers_spec.lua

bench: build
	@scripts/deps.sh bench
	bench/engine/run.sh $(BUILD)/agentflow
	$(BUILD)/bench/bench_agents $(BUILD)
	bench/webhook/run.sh $(BUILD)
	bench/triggers/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
