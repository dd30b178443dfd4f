"""Cached frozen features for prompt learners: the features file and the offline default.

A features file is a ``.npz`` with these arrays (a trial trains only prompts on it):

=================== ============ ==================================================
array               shape, dtype meaning
=================== ============ ==================================================
``features``        (N, D) f32   image features, one row per image
``labels``          (N,) int64   class index of each image, in ``[0, C)``
``class_embeddings`` (C, D) f32  frozen class text embeddings t_c
``class_names``     (C,) str     one name per class
``images``          optional     (N, H, W) or (N, H, W, 3) pixels in [0, 1] (float32)
                                 or 0..255 (uint8), only for pictures
=================== ============ ==================================================

Rows need not be normalised; the model normalises them. The default features
(``digits``) come from scikit-learn's bundled 8x8 digits (1797 real images, 10 classes),
laid out with CLIP's geometry: image features in a narrow cone and class text embeddings
in a second cone with a modality gap (see docs/mop_clip.md for why that matters).

Example:
    >>> fs = load_features("digits")
    >>> fs.features.shape, fs.class_embeddings.shape, str(fs.class_names[3])
    ((1797, 32), (10, 32), 'digit 3')
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapsetune.data._atomic import atomic_path
from collapsetune.data.text import cache_dir

__all__ = ["DIGITS", "FeatureSet", "build_digits_features", "load_features", "save_features"]

DIGITS = "digits"  # the name that selects the built-in offline features
_FORMAT = 1  # bump when the digits construction changes: old cache files are not reused


@dataclass(frozen=True)
class FeatureSet:
    """The arrays of a features file, checked.

    Example:
        >>> fs = FeatureSet(np.eye(2, dtype=np.float32), np.array([0, 1]),
        ...                 np.eye(2, dtype=np.float32), np.array(["a", "b"]))
        >>> fs.num_classes, fs.dim
        (2, 2)
    """

    features: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64
    class_embeddings: np.ndarray  # (C, D) float32
    class_names: np.ndarray  # (C,) str
    images: np.ndarray | None = None  # (N, H, W[, 3]) for pictures, or None

    @property
    def num_classes(self) -> int:
        return int(self.class_embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __post_init__(self) -> None:
        _check(self, "<in memory>")


def _check(fs: FeatureSet, where: str) -> None:
    """Raises ValueError naming the file, the array and the expected shape."""
    f, y, t, names = fs.features, fs.labels, fs.class_embeddings, fs.class_names
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise ValueError(f"{where}: array 'features' must have shape (N, D) with N, D > 0, got {f.shape}")
    n, d = f.shape
    if y.shape != (n,):
        raise ValueError(f"{where}: array 'labels' must have shape (N,) = ({n},) like 'features', got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where}: array 'labels' must hold integers, got dtype {y.dtype}")
    if t.ndim != 2 or t.shape[1] != d or t.shape[0] == 0:
        raise ValueError(f"{where}: array 'class_embeddings' must have shape (C, D) = (C, {d}) "
                         f"with D matching 'features', got {t.shape}")
    c = t.shape[0]
    if names.shape != (c,):
        raise ValueError(f"{where}: array 'class_names' must have shape (C,) = ({c},), got {names.shape}")
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"{where}: array 'labels' must lie in [0, {c}) (C = {c} classes), "
                         f"got values from {y.min()} to {y.max()}")
    if not (np.isfinite(f).all() and np.isfinite(t).all()):
        raise ValueError(f"{where}: arrays 'features' and 'class_embeddings' must be finite")
    if fs.images is not None and (fs.images.shape[0] != n or fs.images.ndim not in (3, 4)):
        raise ValueError(f"{where}: array 'images' must have shape (N, H, W) or (N, H, W, 3) "
                         f"with N = {n}, got {fs.images.shape}")


def save_features(fs: FeatureSet, path: str | os.PathLike[str]) -> Path:
    """Write a features file atomically (temp file + ``os.replace``): readers never see half a file."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "features": fs.features.astype(np.float32), "labels": fs.labels.astype(np.int64),
        "class_embeddings": fs.class_embeddings.astype(np.float32),
        "class_names": fs.class_names.astype(str),
    }
    if fs.images is not None:
        arrays["images"] = fs.images
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_features(source: str | os.PathLike[str] = DIGITS, **digits_options: float) -> FeatureSet:
    """Load a features file, or build (and cache) the default digits features.

    Args:
        source: ``"digits"`` or a path to a ``.npz`` features file.
        **digits_options: ``cone``, ``gap``, ``pca_dim``, ``seed`` for ``build_digits_features``
            (only with ``"digits"``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an array is missing or has the wrong shape, dtype or values; the message
            names the file, the array and the expected shape.
    """
    if str(source) == DIGITS:
        return build_digits_features(**digits_options)
    if digits_options:
        raise ValueError(f"{sorted(digits_options)} only apply to the built-in {DIGITS!r} features, "
                         f"not to the file {source}")
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"features file does not exist: {path} (expected a .npz, or {DIGITS!r})")
    try:
        data = np.load(path, allow_pickle=False)  # never unpickle: a features file is data
    except Exception as exc:
        raise ValueError(f"{path}: not a readable .npz features file ({type(exc).__name__}: {exc})") from None
    with data:
        missing = [k for k in ("features", "labels", "class_embeddings", "class_names") if k not in data]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing}; a features file holds "
                             "'features' (N, D), 'labels' (N,), 'class_embeddings' (C, D), 'class_names' (C,)")
        fs = object.__new__(FeatureSet)  # check with the file name in the message, not "<in memory>"
        for key in ("features", "class_embeddings"):
            object.__setattr__(fs, key, np.asarray(data[key], dtype=np.float32))
        object.__setattr__(fs, "labels", np.asarray(data["labels"]))
        object.__setattr__(fs, "class_names", np.asarray(data["class_names"]).astype(str))
        object.__setattr__(fs, "images", np.asarray(data["images"]) if "images" in data else None)
    _check(fs, str(path))
    object.__setattr__(fs, "labels", fs.labels.astype(np.int64))
    return fs


def build_digits_features(cone: float = 1.5, gap: float = 2.0, pca_dim: int = 30, seed: int = 0) -> FeatureSet:
    """The default offline features: sklearn's digits laid out with CLIP's geometry.

    Each image's pixels (64) are centred and projected by PCA to ``pca_dim`` directions and
    scaled to unit length (z_i); the class text embedding's content is the class's mean
    direction (m_c). Two extra axes give CLIP's two cones:
    ``image = normalize(cone * u + z_i)`` (every image shares direction u, so any two images
    have high cosine, as CLIP image features do) and ``text = normalize(gap * v + m_c)`` (the
    text embeddings sit in their own cone, so image-text cosine is low: the modality gap).
    A fixed random rotation then mixes the axes, as nothing in CLIP is axis-aligned.

    Args:
        cone: Weight of the shared image direction; larger = narrower image cone.
        gap: Weight of the shared text direction; larger = lower image-text cosine.
        pca_dim: PCA directions of the pixels kept; D = pca_dim + 2.
        seed: Seed of the rotation.

    Returns:
        The feature set, with the 8x8 images for pictures. Cached under
        ``cache_dir()/features/``; a cached file is reused when all arguments match.
    """
    if cone < 0 or gap < 0:
        raise ValueError(f"cone and gap must be >= 0, got cone={cone}, gap={gap}")
    if not 2 <= int(pca_dim) <= 62:
        raise ValueError(f"pca_dim must be in [2, 62] (digits have 64 pixels), got {pca_dim}")
    key = hashlib.sha1(f"{_FORMAT}-{cone}-{gap}-{int(pca_dim)}-{seed}".encode()).hexdigest()[:12]
    path = cache_dir() / "features" / f"digits-{key}.npz"
    if path.is_file():
        return load_features(path)
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the default digits features need scikit-learn: pip install scikit-learn") from None

    digits = load_digits()  # bundled with scikit-learn: no download
    pixels = digits.images.reshape(len(digits.images), -1).astype(np.float64) / 16.0  # (N, 64)
    centred = pixels - pixels.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    z = centred @ vt[: int(pca_dim)].T  # (N, P)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    labels = digits.target.astype(np.int64)
    classes = int(labels.max()) + 1
    means = np.stack([z[labels == c].mean(0) for c in range(classes)])  # (C, P)
    means /= np.linalg.norm(means, axis=1, keepdims=True)

    n, p = z.shape
    image = np.concatenate([np.full((n, 1), cone), np.zeros((n, 1)), z], axis=1)  # (N, P+2)
    text = np.concatenate([np.zeros((classes, 1)), np.full((classes, 1), gap), means], axis=1)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((p + 2, p + 2)))
    image, text = image @ rotation, text @ rotation
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    fs = FeatureSet(
        features=image.astype(np.float32), labels=labels, class_embeddings=text.astype(np.float32),
        class_names=np.array([f"digit {c}" for c in range(classes)]),
        images=(digits.images / 16.0).astype(np.float32),
    )
    save_features(fs, path)
    return fs
