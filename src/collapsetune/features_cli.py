"""`collapsetune features`: a features file from an image folder with open_clip and local weights.

The folder has one sub-folder per class (``root/<class name>/*.jpg``, torchvision's
ImageFolder layout). Image features come from the CLIP image tower; each class's text
embedding is the mean of a few prompt templates through the text tower, as the seed's
MoP-CLIP builds its base text features. Nothing is downloaded: the weights are a local file.

Example:
    >>> extract_features("data/cars/train", "cars.npz", "ViT-B-16",
    ...                  "weights/ViT-B-16.pt")  # doctest: +SKIP
    PosixPath('cars.npz')
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from collapsetune.data.features import FeatureSet, save_features

__all__ = ["TEMPLATES", "extract_features"]

TEMPLATES = ("a photo of a {}.", "a close-up photo of a {}.", "a photo of the {}.", "an image of a {}.")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
THUMBNAIL = 32  # side of the stored RGB thumbnails, for the sub-prompt pictures


def extract_features(image_folder: str | os.PathLike[str], out: str | os.PathLike[str], model: str,
                     pretrained_path: str | os.PathLike[str], batch_size: int = 64,
                     device: str = "cpu") -> Path:
    """Write a features file (docs/mop_clip.md) for every image under ``image_folder``.

    Args:
        image_folder: One sub-folder per class; class names are the sub-folder names with
            ``_`` read as a space.
        out: The ``.npz`` to write (atomically).
        model: An open_clip architecture name, e.g. ``ViT-B-16``.
        pretrained_path: Local weights file for that architecture.
        batch_size: Images per forward pass.
        device: ``cpu`` or ``cuda``.

    Returns:
        The path written.

    Raises:
        ImportError: open_clip is not installed (the message says what to install).
        FileNotFoundError: the folder or the weights file does not exist.
        ValueError: no class sub-folders or no images.
    """
    try:
        import open_clip
        from PIL import Image
    except ImportError:
        raise ImportError(
            "collapsetune features needs open_clip: pip install open_clip_torch "
            "(and local CLIP weights passed as pretrained_path; nothing is downloaded)"
        ) from None
    root, weights = Path(image_folder).expanduser(), Path(pretrained_path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder does not exist: {root}")
    if not weights.is_file():
        raise FileNotFoundError(f"weights file does not exist: {weights} (pass a local file; nothing is downloaded)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root}: expected one sub-folder per class (root/<class>/*.jpg), found none")
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).rglob("*"))
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class sub-folders")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a tokenizer lookup must not reach a hub
    net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=str(weights), device=device)
    tokenizer = open_clip.get_tokenizer(model)
    net.eval()
    names = [c.replace("_", " ") for c in classes]

    features, thumbs = [], []
    with torch.no_grad():
        for start in range(0, len(files), batch_size):
            batch = [Image.open(f).convert("RGB") for f, _ in files[start:start + batch_size]]
            x = torch.stack([preprocess(im) for im in batch]).to(device)
            features.append(net.encode_image(x).float().cpu())  # (B, D)
            thumbs += [np.asarray(im.resize((THUMBNAIL, THUMBNAIL))) for im in batch]
        text = []
        for name in names:
            t = net.encode_text(tokenizer([tpl.format(name) for tpl in TEMPLATES]).to(device)).float()
            t = torch.nn.functional.normalize(t, dim=-1).mean(0)  # average of templates
            text.append(torch.nn.functional.normalize(t, dim=0).cpu())
    fs = FeatureSet(
        features=torch.nn.functional.normalize(torch.cat(features), dim=-1).numpy().astype(np.float32),
        labels=np.array([c for _, c in files], dtype=np.int64),
        class_embeddings=torch.stack(text).numpy().astype(np.float32),
        class_names=np.array(names), images=np.stack(thumbs).astype(np.uint8),
    )
    return save_features(fs, out)
