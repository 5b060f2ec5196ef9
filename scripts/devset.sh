#!/usr/bin/env bash
# Builds the real-speech dev set into DIR (default target/devset) once: fetches its sources
# from PyPI and Debian into DIR/.src, checks them, and lays the sets out (scripts/devset.py).
#   scripts/devset.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-target/devset}
if [ -f "$DIR/.complete" ]; then
  echo "devset: present in $DIR"
  exit 0
fi
SRC="$DIR/.src"
mkdir -p "$SRC"

# PyPI: pocketsphinx's source distribution carries LibriVox clips with word alignments.
SDIST=pocketsphinx-5.1.1.tar.gz
SDIST_URL=https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/$SDIST
SDIST_SHA=675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355
if [ ! -d "$SRC/pocketsphinx-5.1.1/test/data/librivox" ]; then
  echo "devset: downloading $SDIST from PyPI"
  python3 - "$SDIST_URL" "$SRC/$SDIST" <<'EOF'
import sys, urllib.request
urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
EOF
  echo "$SDIST_SHA  $SRC/$SDIST" | sha256sum --check --quiet - ||
    { echo "devset: $SDIST does not match its recorded sha256" >&2; exit 1; }
  tar -xzf "$SRC/$SDIST" -C "$SRC" pocketsphinx-5.1.1/test/data/librivox
  rm -f "$SRC/$SDIST"
fi

# Debian: Asterisk's prompts (one voice, English and Spanish) and their transcripts. apt checks
# the packages' signatures; they are unpacked here, not installed.
if [ ! -d "$SRC/usr/share/asterisk/sounds/es_MX_f_Allison" ]; then
  echo "devset: downloading Asterisk's prompts from Debian"
  (cd "$SRC" && apt-get download -q \
    asterisk-core-sounds-en-wav=1.6.1-1 asterisk-core-sounds-en=1.6.1-1 \
    asterisk-core-sounds-es-wav=1.6.1-1 asterisk-core-sounds-es=1.6.1-1 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  for deb in "$SRC"/asterisk-core-sounds-*.deb; do
    dpkg-deb -x "$deb" "$SRC"
  done
  rm -f "$SRC"/asterisk-core-sounds-*.deb
fi

python3 scripts/devset.py "$SRC" "$DIR"
touch "$DIR/.complete"
