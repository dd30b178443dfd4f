from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile

from collapsetune.data import audio as A
from collapsetune.data.audio import (
    MelSpec,
    load_audio_captions,
    load_clotho,
    log_mel,
    synthesize_clips,
    write_clotho,
)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path / "cache"))


def test_synthesis_same_seed_same_bytes():
    a, b = synthesize_clips(6, seed=3), synthesize_clips(6, seed=3)
    assert [c.audio.tobytes() for c in a] == [c.audio.tobytes() for c in b]
    assert [c.captions for c in a] == [c.captions for c in b]
    other = synthesize_clips(6, seed=4)
    assert [c.audio.tobytes() for c in a] != [c.audio.tobytes() for c in other]


def _alt(words) -> str:
    return "(?:" + "|".join(re.escape(w) for w in words) + ")"


def test_synthesis_captions_match_events_in_order():
    # Each caption must be exactly: [opening] event (link event)*, every event phrase naming
    # that event's loudness, pitch (tones), kind and count, in the clip's order.
    for clip in synthesize_clips(40, seed=1):
        assert len(clip.captions) == 5 and len(set(clip.captions)) == 5  # worded differently
        phrases = []
        for ev in clip.events:
            pitch = _alt(A.PITCH_WORDS[ev["pitch"]]) + " " if ev["kind"] == "tone" else ""
            count = " " + _alt(A.COUNT_WORDS[ev["count"]]) if ev["count"] > 1 else ""
            phrases.append(f"an? {_alt(A.LOUD_WORDS[ev['loudness']])} {pitch}{_alt(A.NOUNS[ev['kind']])}{count}")
        pattern = f"(?:{_alt([o for o in A.OPENINGS if o])} )?" + f" {_alt(A.LINKS)} ".join(phrases)
        for caption in clip.captions:
            assert re.fullmatch(pattern, caption), (caption, clip.events)


def test_synthesis_events_are_audible_where_placed():
    clip = synthesize_clips(1, seed=0)[0]
    floor = np.abs(clip.audio[:100]).max()  # the clip starts with >= 0.1 s of noise floor
    assert floor < 0.02
    assert np.abs(clip.audio).max() > 2 * floor


def test_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    clip = synthesize_clips(1, seed=2)[0]
    ref = np.log(librosa.feature.melspectrogram(y=clip.audio, sr=16000, n_fft=512, hop_length=320,
                                                n_mels=64, pad_mode="reflect") + 1e-6)
    ours = log_mel(clip.audio)
    assert ours.shape == ref.shape == (64, MelSpec().frames)
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_load_synthetic_is_cached(tmp_path):
    first = load_audio_captions("synthetic", n_clips=8, seed=5)
    files = list((tmp_path / "cache" / "audio").glob("*.npz"))
    assert len(files) == 1
    second = load_audio_captions("synthetic", n_clips=8, seed=5)
    np.testing.assert_array_equal(first.features, second.features)
    assert first.captions == second.captions and first.features.shape == (8, 64, 126)


@pytest.fixture
def clotho(tmp_path):
    clips = synthesize_clips(3, seed=7)
    csv_path = write_clotho(clips, tmp_path / "clotho")
    return clips, csv_path


def test_clotho_loader_reads_fixture(clotho):
    clips, csv_path = clotho
    loaded = load_clotho(csv_path, csv_path.parent / "audio")
    assert [c.name for c in loaded] == [c.name for c in clips]
    assert [c.captions for c in loaded] == [c.captions for c in clips]
    np.testing.assert_allclose(loaded[0].audio, clips[0].audio, atol=1e-4)  # PCM_16 rounding
    ds = load_audio_captions(str(csv_path.parent))
    assert ds.features.shape == (3, 64, 126) and len(ds.captions[2]) == 5


def test_clotho_loader_resamples_and_normalises(tmp_path):
    folder = tmp_path / "c"
    (folder / "audio").mkdir(parents=True)
    soundfile.write(folder / "audio" / "x.wav", np.zeros((44100, 2), np.float32), 44100)
    (folder / "captions.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        "x.wav,A Dog barks!,b,c,d,\"e, f\"\n")
    clip = load_clotho(folder / "captions.csv", folder / "audio")[0]
    assert len(clip.audio) == 16000
    assert clip.captions == ("a dog barks", "b", "c", "d", "e f")


def test_clotho_loader_missing_wav(clotho):
    _, csv_path = clotho
    (csv_path.parent / "audio" / "clip_00001.wav").unlink()
    with pytest.raises(FileNotFoundError, match="clip_00001.wav"):
        load_clotho(csv_path, csv_path.parent / "audio")


def test_clotho_loader_missing_column(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text("file_name,caption_1,caption_2,caption_3,caption_4\nx.wav,a,b,c,d\n")
    with pytest.raises(ValueError, match="caption_5"):
        load_clotho(path, tmp_path)
