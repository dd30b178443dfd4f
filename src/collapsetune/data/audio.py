"""Audio captioning data: a synthetic sound-event set, the Clotho layout, cached log-mels.

The default data set (``synthetic``) is generated with numpy from a seed: every clip is a
sequence of 1-3 sound events (tones at three pitches, rising and falling chirps, noise
bursts, click trains) separated by silences, each event quiet or loud and played 1-3
times, over a faint noise floor. Each clip has 5 reference captions worded differently (as
Clotho has), drawn from synonyms and sentence templates, so a captioner must hear the
events, their order, loudness and count to score well; one that ignores the audio can only
write the most common caption.

Real data in the Clotho layout is read by path: a captions CSV with the columns
``file_name, caption_1 .. caption_5`` and a folder of WAV files (read with ``soundfile``).

Log-mel features (64 bands; filterbank from ``librosa.filters.mel``) are computed once and
cached under ``cache_dir()/audio/`` (``$COLLAPSETUNE_CACHE`` or ``~/.cache/collapsetune``),
written atomically (temp file + ``os.replace``).

Example:
    >>> ds = load_audio_captions("synthetic", n_clips=20)
    >>> ds.features.shape, len(ds.captions[0])
    ((20, 64, 126), 5)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapsetune.data._atomic import atomic_path
from collapsetune.data._events import (  # noqa: F401 (the vocabulary is also read from here)
    COUNT_WORDS, KINDS, LOUD_WORDS, NOUNS, PITCH_HZ, PITCH_WORDS, Clip,
)
from collapsetune.data._events import event_phrase as _event_phrase
from collapsetune.data._events import render as _render
from collapsetune.data.text import cache_dir

__all__ = [
    "BUILTIN",
    "SYNTHETIC",
    "SYNTHETIC_SCENES",
    "AudioCaptionSet",
    "Clip",
    "MelSpec",
    "caption_words",
    "check_dataset",
    "load_audio_captions",
    "load_clotho",
    "log_mel",
    "synthesize_clips",
    "write_clotho",
]

SYNTHETIC = "synthetic"  # the name that selects the built-in offline data set
SYNTHETIC_SCENES = "synthetic_scenes"  # the harder built-in set (collapsetune.data.audio_scenes)
BUILTIN = (SYNTHETIC, SYNTHETIC_SCENES)  # every other `dataset` value is a Clotho path
_FORMAT = 1  # bump when synthesis or features change: old cache files are not reused
CAPTION_COLUMNS = tuple(f"caption_{i}" for i in range(1, 6))

# How a caption joins its events (the events' own words are in collapsetune.data._events).
LINKS = ("then", "followed by", "and then", "and after that")
OPENINGS = ("", "there is", "we hear", "you can hear", "someone plays")


@dataclass(frozen=True)
class MelSpec:
    """Log-mel settings; part of the cache key."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 320  # 20 ms frames
    n_mels: int = 64
    seconds: float = 2.5  # clips are cropped or padded to this length

    @property
    def frames(self) -> int:
        return int(round(self.seconds * self.sample_rate)) // self.hop + 1


@dataclass(frozen=True)
class AudioCaptionSet:
    """Cached log-mels with their references.

    Example:
        >>> ds = AudioCaptionSet(np.zeros((1, 64, 10), np.float32), [["a beep"] * 5], ["x.wav"])
        >>> ds.n_mels
        64
    """

    features: np.ndarray  # (N, n_mels, T) float32 log-mel
    captions: list[list[str]]  # N lists of 5 normalised captions
    names: list[str]  # file name per clip

    @property
    def n_mels(self) -> int:
        return int(self.features.shape[1])


def caption_words(caption: str) -> list[str]:
    """Lower-case words without punctuation: the tokenisation every metric uses."""
    return re.findall(r"[a-z0-9']+", caption.lower())


def _caption(events: Sequence[dict], rng: np.random.Generator) -> str:
    parts = [_event_phrase(events[0], rng)]
    for ev in events[1:]:
        parts.append(LINKS[int(rng.integers(len(LINKS)))])
        parts.append(_event_phrase(ev, rng))
    opening = OPENINGS[int(rng.integers(len(OPENINGS)))]
    return " ".join(([opening] if opening else []) + parts)


def synthesize_clips(n_clips: int, seed: int = 0, spec: MelSpec = MelSpec()) -> list[Clip]:
    """Deterministic synthetic clips (same arguments, same bytes).

    Args:
        n_clips: Number of clips.
        seed: Seeds one numpy Generator for everything (events, sounds, captions).
        spec: Sample rate and clip length.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    rng = np.random.default_rng(seed)
    sr, length = spec.sample_rate, int(round(spec.seconds * spec.sample_rate))
    clips = []
    for i in range(n_clips):
        while True:  # redraw the few event sequences that do not fit in the clip
            n_events = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
            events = []
            for _ in range(n_events):
                kind = KINDS[int(rng.integers(len(KINDS)))]
                events.append({"kind": kind, "pitch": str(rng.choice(list(PITCH_HZ))) if kind == "tone" else "",
                               "loudness": str(rng.choice(["loud", "quiet"])),
                               "count": int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))})
            sounds = [_render(ev, sr, rng) for ev in events]
            gaps = rng.uniform(0.1, 0.3, size=n_events + 1)
            if sum(len(s) for s in sounds) + int(gaps.sum() * sr) <= length:
                break
        audio = rng.standard_normal(length) * 0.002  # noise floor: silence is never exact zeros
        pos = int(gaps[0] * sr)
        for sound, gap in zip(sounds, gaps[1:]):
            audio[pos:pos + len(sound)] += sound
            pos += len(sound) + int(gap * sr)
        captions: list[str] = []
        while len(captions) < 5:  # 5 differently worded references
            cap = _caption(events, rng)
            if cap not in captions:  # at least 45 wordings exist for any event sequence
                captions.append(cap)
        clips.append(Clip(f"clip_{i:05d}.wav", np.clip(audio, -1, 1).astype(np.float32),
                          tuple(captions), tuple(events)))
    return clips


@functools.lru_cache(maxsize=4)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa.filters  # imported here: librosa pulls numba, which is slow to import

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)


def log_mel(audio: np.ndarray, spec: MelSpec = MelSpec()) -> np.ndarray:
    """Log-mel spectrogram (n_mels, frames) of a waveform (S,), or (N, n_mels, frames) of a
    batch (N, S); cropped or zero-padded to ``spec.seconds``."""
    batch = np.atleast_2d(audio)  # (N, S)
    length = int(round(spec.seconds * spec.sample_rate))
    x = np.zeros((len(batch), length), np.float32)
    x[:, : min(length, batch.shape[1])] = batch[:, :length]
    x = np.pad(x, ((0, 0), (spec.n_fft // 2, spec.n_fft // 2)), mode="reflect")  # centred frames, like librosa.stft
    frames = np.lib.stride_tricks.sliding_window_view(x, spec.n_fft, axis=1)[:, :: spec.hop]  # (N, F, n_fft)
    import scipy.signal  # here: the LM's and MoP-CLIP's workers import this module, and need none of it (~0.5 s)

    window = scipy.signal.get_window("hann", spec.n_fft).astype(np.float32)  # periodic, as librosa
    power = np.abs(np.fft.rfft(frames * window, axis=-1)).astype(np.float32) ** 2  # (N, F, n_fft/2+1)
    mel = _mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels).astype(np.float32)  # (M, n_fft/2+1)
    out = np.log(np.einsum("mk,nfk->nmf", mel, power) + 1e-6)  # (N, M, F)
    return out[0] if audio.ndim == 1 else out


def _resample(audio: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr, target)
    return resample_poly(audio, target // g, sr // g).astype(np.float32)


def _normalise(caption: str) -> str:
    return " ".join(caption_words(caption))


def load_clotho(captions_csv: str | os.PathLike, audio_dir: str | os.PathLike,
                sample_rate: int = 16000) -> list[Clip]:
    """Clips of a Clotho-layout data set: the captions CSV and its folder of WAV files.

    Raises:
        ValueError: the CSV lacks ``file_name`` or a ``caption_i`` column (names them).
        FileNotFoundError: a WAV named in the CSV is not in ``audio_dir`` (names it).
    """
    import soundfile

    captions_csv, audio_dir = Path(captions_csv), Path(audio_dir)
    with open(captions_csv, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("file_name", *CAPTION_COLUMNS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{captions_csv}: missing column(s) {missing}; "
                             f"a Clotho captions CSV has file_name, caption_1..caption_5, got {reader.fieldnames}")
        rows = list(reader)
    clips = []
    for row in rows:
        path = audio_dir / row["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"{captions_csv}: {row['file_name']!r} has no WAV file at {path}")
        audio, sr = soundfile.read(path, dtype="float32", always_2d=True)
        clips.append(Clip(row["file_name"], _resample(audio.mean(axis=1), sr, sample_rate),
                          tuple(_normalise(row[c]) for c in CAPTION_COLUMNS)))
    if not clips:
        raise ValueError(f"{captions_csv}: no rows")
    return clips


def write_clotho(clips: Sequence[Clip], directory: str | os.PathLike, sample_rate: int = 16000) -> Path:
    """Write clips in the Clotho layout (``captions.csv`` + ``audio/*.wav``); returns the CSV path."""
    import soundfile

    directory = Path(directory)
    (directory / "audio").mkdir(parents=True, exist_ok=True)
    for clip in clips:
        soundfile.write(directory / "audio" / clip.name, clip.audio, sample_rate, subtype="PCM_16")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file_name", *CAPTION_COLUMNS])
    for clip in clips:
        writer.writerow([clip.name, *clip.captions])
    (directory / "captions.csv").write_text(buffer.getvalue(), encoding="utf-8")
    return directory / "captions.csv"


def _fit(audios: Sequence[np.ndarray]) -> np.ndarray:
    """Stack waveforms of different lengths into (N, S_max), zero-padded."""
    out = np.zeros((len(audios), max(len(a) for a in audios)), np.float32)
    for i, a in enumerate(audios):
        out[i, : len(a)] = a
    return out


def check_dataset(source: str) -> None:
    """Raises ValueError unless ``source`` names a built-in set or looks like a path.

    A path is anything with a directory separator, a leading ``~`` or ``.``, a ``.csv``
    suffix, or a name that exists where it is read; it is checked when loaded (it may only
    exist on the workers). A bare word that is none of these is a typo of a built-in name.

    Example:
        >>> check_dataset("synthetic_scenes"); check_dataset("/data/clotho_dev")
        >>> check_dataset("synthetic_scene")
        Traceback (most recent call last):
        ...
        ValueError: dataset must be one of ['synthetic', 'synthetic_scenes'] or the path of a Clotho folder (captions.csv + audio/), got 'synthetic_scene'
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"dataset must be one of {list(BUILTIN)} or the path of a Clotho folder, got {source!r}")
    if source in BUILTIN or any(sep in source for sep in ("/", os.sep)) or source[0] in "~." \
            or source.endswith(".csv") or Path(source).exists():
        return
    raise ValueError(f"dataset must be one of {list(BUILTIN)} or the path of a Clotho folder "
                     f"(captions.csv + audio/), got {source!r}")


def load_audio_captions(source: str = SYNTHETIC, n_clips: int = 1200, seed: int = 0,
                        spec: MelSpec = MelSpec()) -> AudioCaptionSet:
    """Log-mels and references, computed once and cached.

    Args:
        source: ``"synthetic"``, ``"synthetic_scenes"`` (collapsetune.data.audio_scenes), or
            a Clotho folder holding ``captions.csv`` and ``audio/`` (or a path to the CSV
            itself, with the WAVs in an ``audio/`` folder beside it).
        n_clips: Synthetic only: number of clips.
        seed: Synthetic only: the generator's seed.
        spec: Log-mel settings (``spec.seconds`` is also the scene clips' length).

    Raises:
        ValueError: ``source`` is neither a built-in name nor a path (:func:`check_dataset`).
    """
    check_dataset(source)
    if source == SYNTHETIC:
        key = json.dumps([_FORMAT, n_clips, seed, vars(spec)], sort_keys=True)
        make = lambda: synthesize_clips(n_clips, seed, spec)
    elif source == SYNTHETIC_SCENES:
        from collapsetune.data import audio_scenes

        recipe = audio_scenes.RECIPE  # read now: the cache key and the clips must agree
        key = json.dumps([_FORMAT, source, n_clips, seed, vars(spec), repr(recipe)], sort_keys=True)
        make = lambda: audio_scenes.synthesize_scene_clips(n_clips, seed, spec.seconds, spec.sample_rate, recipe)
    else:
        path = Path(source).expanduser()
        csv_path = path if path.suffix == ".csv" else path / "captions.csv"
        audio_dir = csv_path.parent / "audio"
        if not csv_path.is_file():
            raise FileNotFoundError(f"no Clotho captions CSV at {csv_path}")
        # Key on the CSV's bytes and every WAV's size and mtime: an edited data set is re-read.
        stats = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in audio_dir.glob("*.wav"))
        key = json.dumps([_FORMAT, str(csv_path.resolve()), hashlib.sha256(csv_path.read_bytes()).hexdigest(),
                          stats, vars(spec)], sort_keys=True)
        make = lambda: load_clotho(csv_path, audio_dir, spec.sample_rate)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cached = cache_dir() / "audio" / f"{source if source in BUILTIN else 'clotho'}-{digest}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as data:
            caps = json.loads(str(data["captions"]))
            return AudioCaptionSet(data["features"].astype(np.float32), caps, list(data["names"]))
    clips = make()
    features = np.concatenate([  # (N, M, T); chunks of 64 clips bound the memory of the frames
        log_mel(_fit([c.audio for c in clips[i:i + 64]]), spec) for i in range(0, len(clips), 64)])
    captions = [list(c.captions) for c in clips]
    names = [c.name for c in clips]
    with atomic_path(cached) as tmp:  # Ray workers may build the same file at once
        np.savez(tmp, features=features.astype(np.float16), captions=np.array(json.dumps(captions)),
                 names=np.array(names))
    # Returned via the float16 round trip so a fresh and a cached load give the same numbers.
    return AudioCaptionSet(features.astype(np.float16).astype(np.float32), captions, names)
