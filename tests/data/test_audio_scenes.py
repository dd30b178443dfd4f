from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from collapsetune.data import audio as A
from collapsetune.data import audio_scenes as S
from collapsetune.data.audio import caption_words, check_dataset, load_audio_captions
from collapsetune.data.audio_scenes import synthesize_scene_clips


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def clips():
    return synthesize_scene_clips(300, seed=0, seconds=2.5)  # ~2 s


def _alt(words) -> str:
    return "(?:" + "|".join(re.escape(w) for w in words) + ")"


def test_scenes_same_seed_same_bytes():
    a, b = synthesize_scene_clips(5, seed=3, seconds=1.0), synthesize_scene_clips(5, seed=3, seconds=1.0)
    assert [c.audio.tobytes() for c in a] == [c.audio.tobytes() for c in b]
    assert [c.captions for c in a] == [c.captions for c in b]
    other = synthesize_scene_clips(5, seed=4, seconds=1.0)
    assert [c.audio.tobytes() for c in a] != [c.audio.tobytes() for c in other]
    assert len(a[0].audio) == 16000  # the clip is as long as asked


def test_scenes_a_few_generic_captions_are_very_frequent(clips):
    scenes = collections.Counter(c.events[0]["scene"] for c in clips)
    assert scenes.most_common(1)[0][0] == "speech"
    assert 0.25 < scenes["speech"] / len(clips) < 0.45  # Zipf: 1 / H(16, 1.1) ~ 0.33
    refs = collections.Counter(cap for c in clips for cap in c.captions)
    top, _ = refs.most_common(1)[0]
    assert top in (S.SCENE_WORDINGS["speech"][0], *S.VAGUE)  # a caption that says nothing specific
    top5 = sum(n for _, n in refs.most_common(5)) / sum(refs.values())
    clean = collections.Counter(cap for c in A.synthesize_clips(300, seed=0) for cap in c.captions)
    assert top5 > 0.07 and top5 > 5 * sum(n for _, n in clean.most_common(5)) / sum(clean.values())
    speech = sum(n for cap, n in refs.items() if cap.endswith(S.SCENE_WORDINGS["speech"][0]))
    assert speech > 0.06 * sum(refs.values())  # "[opening] a person is talking" alone


def test_scenes_vocabulary_is_long_tailed(clips):
    def shares(clip_list):  # (vocabulary size, share of the 10 commonest words, share of the rarer half)
        words = collections.Counter(w for c in clip_list for cap in c.captions for w in caption_words(cap))
        counts = np.array(sorted(words.values(), reverse=True))
        return len(counts), counts[:10].sum() / counts.sum(), counts[len(counts) // 2:].sum() / counts.sum()

    size, top, tail = shares(clips)
    assert size >= 3 * shares(A.synthesize_clips(300, seed=0))[0]  # the clean set has 53 words
    assert top > 0.35  # a few words carry much of the text ...
    assert tail < 0.12  # ... and half the vocabulary is rare (the clean set: 0.26)


def test_scenes_link_is_weak_but_there(clips):
    # Every reference is vague, or [opening] <a scene's wording> [while <event> [then <event>]];
    # most name the clip's own scene, some another one (the noisy link).
    scene_alt = _alt([w for ws in S.SCENE_WORDINGS.values() for w in ws])
    pattern = re.compile(f"(?:{_alt(S.OPENINGS)} )?({scene_alt})(?: while .+)?")
    own = total = 0
    for clip in clips:
        for cap in clip.captions:
            if cap in S.VAGUE:
                continue
            match = pattern.fullmatch(cap)
            assert match, cap
            total += 1
            own += match.group(1) in S.SCENE_WORDINGS[clip.events[0]["scene"]]
            if " while " in cap:
                assert len(clip.events) > 1 and cap.count(" then ") == len(clip.events) - 2, (cap, clip.events)
    assert 0.75 < own / total < 0.95


def test_scenes_events_overlap_the_scene_and_each_other():
    clips = synthesize_scene_clips(60, seed=1, seconds=2.5)
    fg = [c.events[1:] for c in clips]
    assert all(0 <= ev["start"] < ev["end"] <= 2.5 for evs in fg for ev in evs)
    assert all(a["start"] <= b["start"] for evs in fg for a, b in zip(evs, evs[1:]))  # captions go by onset
    assert any(a["end"] > b["start"] for evs in fg for a, b in zip(evs, evs[1:]))  # some overlap each other
    quiet = [c for c, evs in zip(clips, fg) if not evs]  # no foreground event: all that sounds is the scene
    assert quiet and all(np.abs(c.audio).max() > 0.02 for c in quiet)  # the noise floor alone is ~0.006
    assert {c.events[0]["second"] for c in clips} - {""}  # some clips have a second, uncaptioned scene


def test_load_scenes_is_cached_under_its_name(tmp_path):
    first = load_audio_captions("synthetic_scenes", n_clips=6, seed=2)
    assert [p.name.split("-")[0] for p in (tmp_path / "cache" / "audio").glob("*.npz")] == ["synthetic_scenes"]
    second = load_audio_captions("synthetic_scenes", n_clips=6, seed=2)
    np.testing.assert_array_equal(first.features, second.features)
    assert first.features.shape == (6, 64, 126) and first.captions == second.captions
    plain = load_audio_captions("synthetic", n_clips=6, seed=2)
    assert plain.captions != first.captions


def test_unknown_dataset_names_the_key_and_the_choices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"dataset must be one of \['synthetic', 'synthetic_scenes'\] or the path"
                                         r".*got 'synthetic_scene'"):
        load_audio_captions("synthetic_scene", n_clips=4)
    for ok in ("synthetic", "synthetic_scenes", "/data/clotho", "~/clotho", "./clotho", "captions.csv"):
        check_dataset(ok)
    (tmp_path / "clotho_dev").mkdir()
    check_dataset("clotho_dev")  # a bare name that exists is a folder
    assert A.BUILTIN == ("synthetic", "synthetic_scenes")
