#!/usr/bin/env python3
"""Synthesizes the openWakeWord bench's speech clips with espeak-ng.

    /usr/bin/python3 make_clips.py OUT_DIR

Writes OUT_DIR/<name>.npy (int16 PCM, 16 kHz mono, the input openWakeWord's utils.py takes) and
OUT_DIR/clips.json: one entry per clip with its text, voice, speed, the wake-word head it should
trigger (or null) and its split ("calib" or "test").

Everything is deterministic: a fixed list of phrases x voices x speeds, the same background noise
seed per clip, and a split that alternates over the voice/speed grid so both halves hold every
phrase, every voice and both speeds (no clip is in both halves).

Each clip is 1 s of faint noise, the utterance, then noise up to at least 3 s: openWakeWord's
heads look at 16 embeddings (76 + 15 * 8 mel frames, about 2 s), and a real stream always has
audio before the wake word.
"""
import json
import os
import subprocess
import sys
import wave

import numpy as np

# espeak mispronounces "mycroft" (it says "mi-croft"); "hey my croft" sounds like the wake word.
WAKE = [("hey jarvis", "hey_jarvis"), ("alexa", "alexa"), ("hey my croft", "hey_mycroft")]
ORDINARY = ["what time is it", "turn on the kitchen lights", "play some music please",
            "the weather is nice today", "call my mother", "hello how are you",
            "set a timer for ten minutes", "open the garage door"]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland+m3", "en-029+f2", "en-us-nyc+m5"]
SPEEDS = [140, 175]   # words per minute (espeak-ng's default is 175)
RATE = 16000
LEAD_S, MIN_TOTAL_S, TAIL_S = 1.0, 3.0, 0.5
NOISE_RMS = 30.0      # int16 units, about -60 dBFS: a quiet room, not digital silence


def synthesize(text, voice, speed):
    """espeak-ng's WAV (22050 Hz mono int16) as float samples at RATE."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         check=True, capture_output=True).stdout
    import io
    with wave.open(io.BytesIO(wav)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"make_clips: espeak-ng gave {w.getnchannels()} channels of "
                             f"{w.getsampwidth()} bytes, expected mono int16")
        rate = w.getframerate()
        # espeak-ng's --stdout header has nframes 0x7fffffff: read what is there
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if rate != RATE:
        from math import gcd
        from scipy.signal import resample_poly
        g = gcd(rate, RATE)
        x = resample_poly(x, RATE // g, rate // g)
    return x


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    phrases = WAKE + [(t, None) for t in ORDINARY]
    clips = []
    for p, (text, head) in enumerate(phrases):
        for v, voice in enumerate(VOICES):
            for s, speed in enumerate(SPEEDS):
                idx = len(clips)
                speech = synthesize(text, voice, speed)
                n = max(int(MIN_TOTAL_S * RATE), int((LEAD_S + TAIL_S) * RATE) + len(speech))
                rng = np.random.default_rng(1000 + idx)
                x = rng.normal(0.0, NOISE_RMS, n)
                lead = int(LEAD_S * RATE)
                x[lead:lead + len(speech)] += speech
                x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
                name = f"c{idx:03d}_{(head or 'other')}_{v}_{speed}"
                np.save(os.path.join(out, name + ".npy"), x)
                # Alternate over the voice x speed grid, shifted by phrase, so each half gets
                # every phrase with every voice once and both speeds.
                split = "calib" if (v + s + p) % 2 == 0 else "test"
                clips.append({"name": name, "text": text, "voice": voice, "speed": speed,
                              "head": head, "split": split, "samples": int(n)})
    with open(os.path.join(out, "clips.json"), "w") as f:
        json.dump(clips, f, indent=1)
    n_test = sum(c["split"] == "test" for c in clips)
    print(f"make_clips: {len(clips)} clips ({len(clips) - n_test} calibration, {n_test} test) "
          f"in {out}")


if __name__ == "__main__":
    main()
