#!/usr/bin/env python3
"""Builds roomtape's real-speech dev set (for `roomtape bench quality` and the e2e tests).

Usage: scripts/devset.py DIR

Real human speech with reference text, from packages on the registries this project reaches:
- PyPI `pocketsphinx==5.1.1` (its sdist): five LibriVox audiobook clips (Sense and
  Sensibility, one reader, 16 kHz) with transcripts and word alignments;
- Debian `asterisk-core-sounds-{en,es}-wav` and `asterisk-core-sounds-{en,es}`: telephone
  prompts recorded by one voice artist in US English and Mexican Spanish (8 kHz), with their
  transcripts.

Sets, each DIR/<set>/set.json plus 16 kHz mono WAV tracks (all tracks of a set start at room
time 0 and have the same length; times are milliseconds of room time; lines in spoken order):
  librivox-en  the clips on one track, apart by pauses of 0.8 to 3 s (word times known)
  prompts-en   40 English prompts on one track, apart by pauses of 0.4 to 3 s
  prompts-es   30 Spanish prompts likewise
  call-en      a two-speaker conversation, one track each: the reader and the prompt voice
               take turns with short gaps, one turn overlapping the one before
Deterministic: the same bytes every run. Nothing is downloaded here; scripts/devset.sh fetches.
"""

import gzip
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import wave

RATE = 16000


def sox(*args):
    subprocess.run(["sox", *args], check=True)


def read_pcm(path):
    """16 kHz mono 16-bit samples of any file sox reads, as bytes."""
    out = subprocess.run(
        ["sox", path, "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return out


def trim(pcm, threshold=300):
    """Cuts leading and trailing near-silence (10 ms frames) from 16-bit samples."""
    frame = RATE // 100 * 2
    frames = [pcm[i : i + frame] for i in range(0, len(pcm), frame)]

    def loud(f):
        n = len(f) // 2
        if n == 0:
            return False
        vals = memoryview(f).cast("h")
        return max(abs(v) for v in vals) > threshold

    first = next((i for i, f in enumerate(frames) if loud(f)), 0)
    last = next((i for i in range(len(frames) - 1, -1, -1) if loud(frames[i])), len(frames) - 1)
    lo, hi = max(0, first - 2), min(len(frames), last + 3)
    return b"".join(frames[lo:hi])


def silence(seconds):
    return b"\0\0" * int(round(seconds * RATE))


def write_wav(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)


def ms(samples_bytes):
    return len(samples_bytes) // 2 * 1000 // RATE


class Track:
    """One speaker's track being laid out in room time."""

    def __init__(self):
        self.pcm = bytearray()

    def at(self, t_ms):
        need = t_ms * RATE // 1000 * 2
        if len(self.pcm) < need:
            self.pcm += b"\0" * (need - len(self.pcm))

    def put(self, t_ms, pcm):
        self.at(t_ms)
        start = t_ms * RATE // 1000 * 2
        end = start + len(pcm)
        if len(self.pcm) < end:
            self.pcm += b"\0" * (end - len(self.pcm))
        self.pcm[start:end] = pcm


def librivox(src):
    base = os.path.join(src, "pocketsphinx-5.1.1", "test", "data", "librivox")
    clips = []
    for name in sorted(os.listdir(base)):
        if not name.endswith(".wav"):
            continue
        stem = os.path.join(base, name[:-4])
        align = json.load(open(stem + ".json"))
        words = []
        for w in align["w"]:
            t = re.sub(r"\(\d+\)$", "", w["t"])
            if t.startswith("<") or t.startswith("["):
                continue
            words.append({"text": t, "start_ms": round(w["b"] * 1000), "end_ms": round((w["b"] + w["d"]) * 1000)})
        text = open(stem + ".txt").read().strip()
        clips.append({"pcm": read_pcm(stem + ".wav"), "text": text, "words": words})
    return clips


def prompts(src, lang):
    voice = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison"}[lang]
    sounds = os.path.join(src, "usr", "share", "asterisk", "sounds", voice)
    doc = os.path.join(src, "usr", "share", "doc", f"asterisk-core-sounds-{lang}", f"core-sounds-{lang}.txt.gz")
    out = {}
    with gzip.open(doc, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^([\w/-]+):\s*(.+)$", line.strip())
            # Stage directions ("[tone]", "(2 seconds of silence)") are not speech.
            if not m or any(c in m.group(2) for c in "[(<"):
                continue
            wav = os.path.join(sounds, m.group(1) + ".wav")
            text = m.group(2).strip()
            if os.path.exists(wav) and len(text.split()) >= 4:
                out[m.group(1)] = (wav, text)
    return out


def line(track, start, pcm, text, words=None):
    d = {"track": track, "start_ms": start, "end_ms": start + ms(pcm), "text": text}
    if words is not None:
        d["words"] = [
            {"text": w["text"], "start_ms": start + w["start_ms"], "end_ms": start + w["end_ms"]} for w in words
        ]
    return d


def save(out, name, language, source, speakers, tracks, lines):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    length = max(len(t.pcm) for t in tracks)
    entries = []
    for i, (speaker, t) in enumerate(zip(speakers, tracks)):
        t.pcm += b"\0" * (length - len(t.pcm))
        file = f"track{i}.wav"
        write_wav(os.path.join(d, file), bytes(t.pcm))
        entries.append({"speaker": speaker, "file": file})
    lines.sort(key=lambda l: (l["start_ms"], l["end_ms"]))
    doc = {"name": name, "language": language, "source": source, "tracks": entries, "lines": lines}
    with open(os.path.join(d, "set.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
    secs = length / 2 / RATE
    print(f"devset: {name}: {len(entries)} track(s), {len(lines)} lines, {secs:.0f} s")


def one_track_set(out, name, language, source, speaker, items, rng, gap):
    t = Track()
    lines = []
    now = 500
    for pcm, text, words in items:
        lines.append(line(0, now, pcm, text, words))
        t.put(now, pcm)
        now += ms(pcm) + round(rng.uniform(*gap) * 1000)
    t.at(now)
    save(out, name, language, source, [speaker], [t], lines)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: devset.py SRC DIR")
    src, out = sys.argv[1], sys.argv[2]
    rng = random.Random(14)
    clips = librivox(src)
    ps = "PyPI pocketsphinx==5.1.1 sdist, test/data/librivox (LibriVox, Sense and Sensibility)"
    one_track_set(
        out, "librivox-en", "en", ps, "Reader",
        [(c["pcm"], c["text"], c["words"]) for c in clips], rng, (0.8, 3.0),
    )

    en = prompts(src, "en")
    keys = sorted(en)
    rng.shuffle(keys)
    ast = "Debian asterisk-core-sounds-{lang}-wav 1.6.1 (telephone prompts) and core-sounds-{lang}.txt"
    items = [(trim(read_pcm(en[k][0])), en[k][1], None) for k in keys[:40]]
    one_track_set(out, "prompts-en", "en", ast.format(lang="en"), "Operator", items, rng, (0.4, 3.0))

    es = prompts(src, "es")
    keys_es = sorted(es)
    rng.shuffle(keys_es)
    items = [(trim(read_pcm(es[k][0])), es[k][1], None) for k in keys_es[:30]]
    one_track_set(out, "prompts-es", "es", ast.format(lang="es"), "Operadora", items, rng, (0.4, 3.0))

    # A conversation: the reader and the prompt voice take turns, each on their own track.
    reader, operator = Track(), Track()
    lines = []
    now = 400
    turns = keys[40:52]
    for i, k in enumerate(turns):
        c = clips[i % len(clips)]
        lines.append(line(0, now, c["pcm"], c["text"], c["words"]))
        reader.put(now, c["pcm"])
        now += ms(c["pcm"])
        # The third answer starts half a second before the reader has finished.
        now += -500 if i == 2 else round(rng.uniform(0.2, 1.0) * 1000)
        pcm = trim(read_pcm(en[k][0]))
        lines.append(line(1, now, pcm, en[k][1]))
        operator.put(now, pcm)
        now += ms(pcm) + round(rng.uniform(0.2, 1.0) * 1000)
    reader.at(now)
    operator.at(now)
    save(out, "call-en", "en", ps + "; " + ast.format(lang="en"), ["Reader", "Operator"], [reader, operator], lines)


if __name__ == "__main__":
    main()
