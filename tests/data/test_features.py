"""Features files: round trip, errors that name the file and array, the digits default."""

from __future__ import annotations

import numpy as np
import pytest

from collapsetune.data.features import FeatureSet, build_digits_features, load_features, save_features


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path / "cache"))


def _fs(n=6, d=4, c=3) -> FeatureSet:
    rng = np.random.default_rng(0)
    return FeatureSet(rng.standard_normal((n, d)).astype(np.float32), np.arange(n) % c,
                      rng.standard_normal((c, d)).astype(np.float32), np.array([f"c{i}" for i in range(c)]),
                      images=rng.random((n, 2, 2)).astype(np.float32))


def test_features_round_trip(tmp_path):
    fs = _fs()
    path = save_features(fs, tmp_path / "f.npz")
    back = load_features(path)
    np.testing.assert_array_equal(back.features, fs.features)
    np.testing.assert_array_equal(back.labels, fs.labels)
    np.testing.assert_array_equal(back.class_embeddings, fs.class_embeddings)
    assert back.class_names.tolist() == ["c0", "c1", "c2"]
    assert back.labels.dtype == np.int64 and back.features.dtype == np.float32
    np.testing.assert_array_equal(back.images, fs.images)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def _write(path, **arrays):
    base = {"features": np.zeros((4, 3), np.float32), "labels": np.array([0, 1, 0, 1]),
            "class_embeddings": np.ones((2, 3), np.float32), "class_names": np.array(["a", "b"])}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize("arrays, match", [
    ({"features": np.zeros(4, np.float32)}, r"'features' must have shape \(N, D\)"),
    ({"labels": np.array([0, 1, 0])}, r"'labels' must have shape \(N,\) = \(4,\)"),
    ({"class_embeddings": np.ones((2, 5), np.float32)}, r"'class_embeddings' must have shape \(C, D\) = \(C, 3\)"),
    ({"class_names": np.array(["a"])}, r"'class_names' must have shape \(C,\) = \(2,\)"),
    ({"labels": np.array([0, 1, 2, 1])}, r"'labels' must lie in \[0, 2\)"),
    ({"labels": np.array([0, -1, 0, 1])}, r"'labels' must lie in \[0, 2\)"),
    ({"labels": np.array([0.0, 1.0, 0.0, 1.0])}, "must hold integers"),
    ({"class_embeddings": None}, r"missing array\(s\) \['class_embeddings'\]"),
])
def test_features_errors_name_file_array_and_shape(tmp_path, arrays, match):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_features(path)
    assert str(path) in str(info.value)


def test_features_missing_file_and_junk(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_features(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match="junk.npz: not a readable"):
        load_features(junk)
    with pytest.raises(ValueError, match="only apply to the built-in"):
        load_features(_write(tmp_path / "ok.npz"), cone=1.0)


def test_digits_features_are_deterministic_cached_and_clip_like(tmp_path):
    fs = build_digits_features()
    assert fs.features.shape == (1797, 32) and fs.class_embeddings.shape == (10, 32)
    assert fs.images.shape == (1797, 8, 8) and fs.num_classes == 10
    cached = list((tmp_path / "cache" / "features").glob("digits-*.npz"))
    assert len(cached) == 1
    again = build_digits_features()
    np.testing.assert_array_equal(again.features, fs.features)
    x = fs.features / np.linalg.norm(fs.features, axis=1, keepdims=True)
    t = fs.class_embeddings
    assert (x[::7] @ x[::7].T).mean() > 0.6  # a narrow image cone, as CLIP's
    own = (x * t[fs.labels]).sum(1)
    assert 0.05 < own.mean() < 0.35  # low image-text cosine: the modality gap
    assert (np.argmax(x @ t.T, axis=1) == fs.labels).mean() > 0.7  # yet zero-shot works


def test_extract_features_without_open_clip_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from collapsetune.features_cli import extract_features

    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install open_clip_torch"):
        extract_features(tmp_path, tmp_path / "f.npz", "ViT-B-16", tmp_path / "w.pt")
