# roomtape: `make run` and `make test` on a fresh Debian machine (as root) do all the set-up.

CARGO ?= cargo
CARGO_FLAGS ?= --locked
ARGS ?=
FUZZ_SECONDS ?= 60
FUZZ_TARGET := x86_64-unknown-linux-gnu
# Coverage instrumentation for libFuzzer on stable Rust (what cargo-fuzz does on nightly).
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks

export RUST_BACKTRACE ?= 1

.DEFAULT_GOAL := help
.PHONY: help setup build run lint test fuzz-build fuzz bench clean

help:
	@echo "make run    - install what is missing, build, start roomtape serve (ARGS=... for flags)"
	@echo "make test   - install what is missing, then fmt, clippy, every test, fuzz build"
	@echo "make bench  - the ingest benchmark"
	@echo "make fuzz   - run each fuzz target for FUZZ_SECONDS (default 60)"
	@echo "make setup  - only install what is missing"
	@echo "make build  - only build (release)"
	@echo "make clean  - remove build output"

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release $(CARGO_FLAGS)

run: build
	./target/release/roomtape serve $(ARGS)

lint:
	@echo "==> cargo fmt --check"
	$(CARGO) fmt --all -- --check
	@echo "==> cargo clippy -D warnings"
	$(CARGO) clippy --release --all-targets $(CARGO_FLAGS) -- -D warnings

test: setup
	@$(MAKE) --no-print-directory lint
	@echo "==> cargo test"
	$(CARGO) test --release --workspace $(CARGO_FLAGS)
	@$(MAKE) --no-print-directory fuzz-build

fuzz-build:
	@echo "==> fuzz targets (build)"
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" CARGO_TARGET_DIR=target/fuzz \
	  $(CARGO) build --release $(CARGO_FLAGS) --target $(FUZZ_TARGET) --manifest-path fuzz/Cargo.toml

fuzz: fuzz-build
	@mkdir -p fuzz/corpus/track_reader fuzz/corpus/recorder
	cp -n tests/fixtures/golden-archive-v1/tracks/*.opus fuzz/corpus/track_reader/ 2>/dev/null || true
	target/fuzz/$(FUZZ_TARGET)/release/track_reader -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/track_reader
	target/fuzz/$(FUZZ_TARGET)/release/recorder -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/recorder

bench: build
	./target/release/roomtape bench ingest

clean:
	$(CARGO) clean
