"""The sound events both synthetic audio sets are made of: their vocabulary, how one is
worded and how one sounds, and the clip that holds them.

``collapsetune.data.audio`` (the clean set) and ``collapsetune.data.audio_scenes`` (the
scenes set, which places these events over a background) both import this module, so
neither imports the other's private pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["COUNT_WORDS", "KINDS", "LOUD_WORDS", "NOUNS", "PITCH_HZ", "PITCH_WORDS", "Clip", "article",
           "event_phrase", "render"]

# Event vocabulary. Synonyms are what make the 5 references of a clip differ in wording.
KINDS = ("tone", "rising", "falling", "noise", "clicks")
PITCH_HZ = {"low": (200.0, 320.0), "mid": (500.0, 800.0), "high": (1500.0, 2400.0)}
PITCH_WORDS = {"low": ("low", "deep", "low pitched"), "mid": ("medium", "mid pitched", "moderate"),
               "high": ("high", "high pitched", "shrill")}
NOUNS = {"tone": ("beep", "tone", "bleep"), "rising": ("rising tone", "upward sweep", "rising whistle"),
         "falling": ("falling tone", "downward sweep", "falling whistle"),
         "noise": ("burst of noise", "noise burst", "hiss"),
         "clicks": ("series of clicks", "click train", "rapid clicking")}
LOUD_WORDS = {"loud": ("loud", "strong", "powerful"), "quiet": ("quiet", "soft", "faint")}
COUNT_WORDS = {1: ("",), 2: ("twice", "two times"), 3: ("three times", "thrice")}


@dataclass(frozen=True)
class Clip:
    """One clip: waveform (S,) float32 in [-1, 1], its 5 captions and (synthetic only) events."""

    name: str
    audio: np.ndarray
    captions: tuple[str, ...]
    events: tuple[dict, ...] = ()


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def event_phrase(ev: dict, rng: np.random.Generator, verbs: tuple[str, ...] = ()) -> str:
    """"a loud beep twice"; with `verbs`, one of them after the noun ("a loud beep rings twice")."""
    pick = lambda options: options[int(rng.integers(len(options)))]
    words = [pick(LOUD_WORDS[ev["loudness"]])]
    if ev["kind"] == "tone":
        words.append(pick(PITCH_WORDS[ev["pitch"]]))
    words.append(pick(NOUNS[ev["kind"]]))
    if verbs:
        words.append(pick(verbs))
    count = pick(COUNT_WORDS[ev["count"]])
    phrase = f"{article(words[0])} {' '.join(words)}"
    return f"{phrase} {count}".strip()


def render(ev: dict, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One event (all its repetitions) as a waveform."""
    dur = {"tone": (0.12, 0.25), "rising": (0.25, 0.4), "falling": (0.25, 0.4),
           "noise": (0.15, 0.3), "clicks": (0.25, 0.4)}[ev["kind"]]
    n = int(rng.uniform(*dur) * sr)
    t = np.arange(n) / sr
    if ev["kind"] == "tone":
        sig = np.sin(2 * np.pi * rng.uniform(*PITCH_HZ[ev["pitch"]]) * t)
    elif ev["kind"] in ("rising", "falling"):
        f0, f1 = (300.0, 2500.0) if ev["kind"] == "rising" else (2500.0, 300.0)
        f = f0 * (f1 / f0) ** (t / t[-1])  # exponential sweep
        sig = np.sin(2 * np.pi * np.cumsum(f) / sr)
    elif ev["kind"] == "noise":
        sig = rng.standard_normal(n) * 0.5
    else:  # clicks: short decaying impulses at 15-25 Hz
        sig = np.zeros(n)
        period = int(sr / rng.uniform(15.0, 25.0))
        click = np.exp(-np.arange(40) / 6.0) * np.sign(rng.standard_normal(40))
        for start in range(0, n - 40, period):
            sig[start:start + 40] += click
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * sr))
    amp = rng.uniform(0.5, 0.8) if ev["loudness"] == "loud" else rng.uniform(0.04, 0.08)
    one = sig * fade * amp
    gap = np.zeros(int(0.08 * sr))
    return np.concatenate([np.concatenate([one, gap]) for _ in range(ev["count"])])[: -len(gap)]
