"""A harder synthetic audio-caption set, built to hold the seed's collapse (issue 14).

``dataset: synthetic_scenes``. The default ``synthetic`` set has clean events and captions
that name them, so even the seed's failing captioner (max pooling, audio only as the GRU's
initial state, greedy) finds the audio after ~300 steps. This set adds what real captioning
data (Clotho, AudioCaps) has and the clean set lacks:

- **Frequent generic captions.** Every clip has a background scene drawn from a Zipf
  distribution over 16 scenes (speech ~1/3 of the clips, water ~1/6, then a long tail), and
  each scene has a dominant wording ("a person is talking", "water is running").
- **A weak, noisy audio-to-caption link.** Some references describe only the scene, some
  name the wrong scene (drawn from the prior, as an annotator who guesses), some are vague
  ("a sound is heard"), and an uncaptioned second scene often plays underneath.
- **Long clips with overlapping sounds.** The scene fills the whole clip; 0-2 foreground
  events (the clean set's tones, chirps, bursts, clicks) are placed at random times, over
  the scene and over each other.
- **A long-tailed vocabulary.** ~160 words, most of them in the rare scenes' wordings.

Captions read "[opening] <scene> [while <event> [then <event>]]". The opening carries no
information about the audio, so the first audio-dependent word comes 0-5 words in.

Example:
    >>> clips = synthesize_scene_clips(4, seed=0)
    >>> clips[0].captions[1]
    'it is raining heavily while a soft series of clicks is heard'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from collapsetune.data._events import KINDS, PITCH_HZ, Clip, event_phrase, render

__all__ = ["SCENES", "SCENE_WORDINGS", "ScenesRecipe", "RECIPE", "synthesize_scene_clips"]


@dataclass(frozen=True)
class ScenesRecipe:
    """Knobs of the generator; part of the cache key. The defaults are the shipped set
    (``benchmarks/probe_audio_caption.py --recipe KEY=VALUE`` tries others)."""

    zipf: float = 1.1  # scene frequency ~ 1 / rank**zipf over the 16 scenes
    p_dominant: float = 0.5  # share of a scene's references that use its dominant wording
    p_generic: float = 0.35  # a reference names only the scene, not the foreground events
    p_wrong: float = 0.15  # a reference names a scene drawn from the prior instead (noisy link)
    p_vague: float = 0.05  # "a sound is heard": nothing about the clip
    p_second: float = 0.5  # an uncaptioned second scene plays underneath
    p_opening: float = 0.7  # a reference starts with an opening that says nothing about the audio
    events: tuple[float, float, float] = (0.3, 0.45, 0.25)  # P(0, 1, 2 foreground events)
    scene_level: tuple[float, float] = (0.08, 0.4)  # peak amplitude of the scene


RECIPE = ScenesRecipe()  # benchmarks/probe_audio_caption.py swaps this to probe others

# (scene, wordings): the first wording is the dominant one. Order = frequency rank.
SCENE_WORDINGS: dict[str, tuple[str, ...]] = {
    "speech": ("a person is talking", "a man is talking", "people are talking", "a woman is speaking",
               "someone speaks quietly"),
    "water": ("water is running", "water flows from a tap", "a stream of water is splashing", "water trickles"),
    "traffic": ("cars are passing by", "traffic is passing on a road", "a vehicle drives past"),
    "rain": ("rain is falling", "rain falls on a roof", "it is raining heavily"),
    "wind": ("wind is blowing", "the wind howls", "a gust of wind blows"),
    "birds": ("birds are chirping", "birds sing in the trees", "a bird tweets"),
    "engine": ("an engine is running", "a machine hums", "a motor idles"),
    "crowd": ("a crowd is cheering", "people are clapping", "an audience applauds"),
    "footsteps": ("someone is walking", "footsteps on gravel", "a person walks slowly"),
    "dog": ("a dog is barking", "a dog barks repeatedly", "a puppy yelps"),
    "bell": ("a bell is ringing", "a church bell tolls", "a bell chimes"),
    "music": ("music is playing", "a melody is played", "someone plays a tune"),
    "door": ("a door creaks", "a wooden door squeaks open", "hinges creak"),
    "clock": ("a clock is ticking", "a clock ticks steadily", "a watch ticks"),
    "insects": ("insects are buzzing", "crickets chirp", "a fly buzzes around"),
    "thunder": ("thunder rumbles", "thunder roars in the distance", "a storm rumbles"),
}
SCENES = tuple(SCENE_WORDINGS)
OPENINGS = ("in the background", "you can hear that", "in this recording", "outside", "in the distance",
            "there is a recording where", "nearby")
VAGUE = ("a sound is heard", "something is making noise", "noise can be heard")
VERBS = ("sounds", "is heard", "plays")


def _band(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """White noise limited to [lo, hi] Hz, peak 1."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-9)


def _env(rng: np.random.Generator, n: int, sr: int, rate: float, floor: float = 0.0) -> np.ndarray:
    """A smooth random envelope in [floor, 1] that changes ~rate times a second."""
    knots = rng.uniform(floor, 1.0, int(n / sr * rate) + 2)
    return np.interp(np.linspace(0, len(knots) - 1, n), np.arange(len(knots)), knots)


def _bursts(rng: np.random.Generator, n: int, sr: int, rate: float, length: float,
            make: Callable[[int], np.ndarray], jitter: float = 0.5) -> np.ndarray:
    """Copies of make(samples) at ~rate per second, each `length` s long."""
    out, m = np.zeros(n), max(2, int(length * sr))
    pos = int(rng.uniform(0, 1 / rate) * sr)
    while pos < n - m:
        out[pos:pos + m] += make(m)
        pos += int(sr / rate * rng.uniform(1 - jitter, 1 + jitter))
    return out


def _harmonics(t: np.ndarray, f0: np.ndarray | float, weights) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(f0, t.shape)) * (t[1] - t[0])
    return sum(w * np.sin(k * phase) for k, w in enumerate(weights, start=1))


def _scene(name: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One background scene filling n samples, peak ~1."""
    t = np.arange(n) / sr
    decay = lambda m, tau: np.exp(-np.arange(m) / (tau * sr))
    if name in ("speech", "crowd"):
        voices = 1 if name == "speech" else 4
        x = np.zeros(n)
        for _ in range(voices):
            f0 = rng.uniform(100, 220) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
            formant = _env(rng, n, sr, 4.0).mean()  # one timbre per voice (its mean formant)
            w = [np.exp(-((k * 160 - 300 - 600 * formant) / 350) ** 2) + 0.2 for k in range(1, 13)]
            syllables = (_env(rng, n, sr, 4.0) > 0.35) * _env(rng, n, sr, 8.0, 0.3)
            x += _harmonics(t, f0, w) * syllables
        if name == "crowd":
            x = 0.4 * x / (np.abs(x).max() + 1e-9) + _bursts(rng, n, sr, 25, 0.01, lambda m: rng.standard_normal(m)
                                                             * decay(m, 0.003), jitter=0.9) * _env(rng, n, sr, 1, 0.4)
    elif name == "water":
        x = _band(rng, n, sr, 400, 3000) * _env(rng, n, sr, 20.0) ** 2
    elif name == "traffic":
        x = _band(rng, n, sr, 30, 400) * (0.3 + np.exp(-((t - rng.uniform(0, t[-1])) / 0.8) ** 2))
    elif name == "rain":
        x = _band(rng, n, sr, 2000, 6000) * 0.3 + _bursts(rng, n, sr, 150, 0.004, rng.standard_normal, jitter=0.95)
    elif name == "wind":
        x = _band(rng, n, sr, 150, 1200) * _env(rng, n, sr, 0.7, 0.1)
    elif name == "birds":
        def chirp(m: int) -> np.ndarray:
            f = np.linspace(rng.uniform(2500, 3500), rng.uniform(4000, 5000), m)
            return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)
        x = _bursts(rng, n, sr, 6, 0.07, chirp, jitter=0.8)
    elif name == "engine":
        x = _harmonics(t, rng.uniform(40, 90), [1 / k for k in range(1, 21)]) * (
            0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(8, 20) * t))
    elif name == "footsteps":
        x = _bursts(rng, n, sr, rng.uniform(1.5, 2.5), 0.06,
                    lambda m: _band(rng, m, sr, 50, 600) * decay(m, 0.015), jitter=0.1)
    elif name == "dog":
        f0 = rng.uniform(400, 700)
        bark = lambda m: (_harmonics(np.arange(m) / sr, f0, [1, 0.6, 0.4])
                          + 0.3 * rng.standard_normal(m)) * decay(m, 0.05)
        x = _bursts(rng, n, sr, 2.0, 0.15, bark, jitter=0.6)
    elif name == "bell":
        f = rng.uniform(400, 900)
        strike = lambda m: sum(a * np.sin(2 * np.pi * f * r * np.arange(m) / sr)
                               for a, r in ((1, 1), (0.6, 2.4), (0.4, 3.9), (0.25, 5.4))) * decay(m, 0.6)
        x = _bursts(rng, n, sr, 0.8, 1.2, strike, jitter=0.3)
    elif name == "music":
        scale = 220 * 2 ** (np.array([0, 2, 4, 7, 9, 12, 14]) / 12)
        notes = np.repeat(rng.choice(scale, int(n / sr * 4) + 1), int(sr / 4))[:n]
        x = _harmonics(t, notes, [1, 0.5, 0.3, 0.2]) * (0.6 + 0.4 * np.cos(2 * np.pi * 4 * t) ** 2)
    elif name == "door":
        f0 = rng.uniform(40, 120) * _env(rng, n, sr, 3.0, 0.6)
        x = _harmonics(t, f0, [1 / k for k in range(1, 16)]) * (_env(rng, n, sr, 0.8) > 0.5)
    elif name == "clock":
        x = _bursts(rng, n, sr, rng.choice([1.0, 2.0]), 0.003, lambda m: rng.standard_normal(m), jitter=0.0)
    elif name == "insects":
        x = np.sin(2 * np.pi * rng.uniform(4000, 6000) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(30, 60) * t))
    else:  # thunder: a low crash and a long decay
        start = int(rng.uniform(0, 0.5) * n)
        x = _band(rng, n, sr, 20, 200) * np.concatenate([np.zeros(start), decay(n - start, 1.5)])
    return x / (np.abs(x).max() + 1e-9)


def _event_phrase(ev: dict, rng: np.random.Generator) -> str:
    return event_phrase(ev, rng, verbs=VERBS)


def _caption(scene: str, events: list[dict], prior: np.ndarray, recipe: ScenesRecipe,
             rng: np.random.Generator) -> str:
    pick = lambda options: options[int(rng.integers(len(options)))]
    if rng.random() < recipe.p_vague:
        return pick(VAGUE)
    if rng.random() < recipe.p_wrong:  # the annotator names a scene, but not this one
        scene = SCENES[int(rng.choice(len(SCENES), p=prior))]
    wordings = SCENE_WORDINGS[scene]
    parts = [wordings[0] if rng.random() < recipe.p_dominant else pick(wordings[1:])]
    if rng.random() < recipe.p_opening:
        parts.insert(0, pick(OPENINGS))
    if events and rng.random() >= recipe.p_generic:
        parts += ["while", _event_phrase(events[0], rng)]
        for ev in events[1:]:
            parts += ["then", _event_phrase(ev, rng)]
    return " ".join(parts)


def synthesize_scene_clips(n_clips: int, seed: int = 0, seconds: float = 5.0, sample_rate: int = 16000,
                           recipe: ScenesRecipe | None = None) -> list:
    """Deterministic scene clips (same arguments, same bytes); see the module docstring.

    Args:
        n_clips: Number of clips.
        seed: Seeds one numpy Generator for everything.
        seconds: Clip length; the scene fills it.
        sample_rate: Samples per second.
        recipe: Generator knobs; ``RECIPE`` (the shipped set) when None.

    Returns:
        ``collapsetune.data.audio.Clip`` objects; their ``events`` hold the scene first
        (``{"scene": name, "second": name or ""}``), then the foreground events by onset
        (the clean set's event dicts plus ``start`` and ``end`` in seconds).
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    recipe = recipe or RECIPE
    rng = np.random.default_rng(seed)
    sr, n = sample_rate, int(round(seconds * sample_rate))
    prior = 1.0 / np.arange(1, len(SCENES) + 1) ** recipe.zipf
    prior /= prior.sum()
    clips = []
    for i in range(n_clips):
        scene = SCENES[int(rng.choice(len(SCENES), p=prior))]
        audio = _scene(scene, n, sr, rng) * rng.uniform(*recipe.scene_level)
        second = ""
        if rng.random() < recipe.p_second:  # heard, never captioned
            second = SCENES[int(rng.integers(len(SCENES)))]
            audio += _scene(second, n, sr, rng) * rng.uniform(0.3, 0.8) * recipe.scene_level[0]
        events, starts = [], []
        for _ in range(int(rng.choice(3, p=recipe.events))):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            ev = {"kind": kind, "pitch": str(rng.choice(list(PITCH_HZ))) if kind == "tone" else "",
                  "loudness": str(rng.choice(["loud", "quiet"])),
                  "count": int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))}
            sound = render(ev, sr, rng)[: n]
            start = int(rng.integers(0, n - len(sound) + 1))  # anywhere: events overlap
            audio[start:start + len(sound)] += sound
            events.append({**ev, "start": start / sr, "end": (start + len(sound)) / sr})
            starts.append(start)
        events = [ev for _, ev in sorted(zip(starts, events), key=lambda p: p[0])]  # captions go by onset
        audio += rng.standard_normal(n) * 0.002
        captions: list[str] = []
        for _ in range(200):  # 5 references, differently worded where the recipe allows
            cap = _caption(scene, events, prior, recipe, rng)
            if cap not in captions:
                captions.append(cap)
            if len(captions) == 5:
                break
        while len(captions) < 5:  # a tiny recipe can run out of wordings: repeat one
            captions.append(captions[-1])
        clips.append(Clip(f"scene_{i:05d}.wav", np.clip(audio, -1, 1).astype(np.float32), tuple(captions),
                          ({"scene": scene, "second": second}, *events)))
    return clips
