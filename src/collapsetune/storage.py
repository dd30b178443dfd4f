"""Reading and writing a sweep's own small files (the resolved sweep, launch facts) in its
results folder, which may be a local path or a URI Ray writes to (s3://, gs://, file://).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs

from collapsetune.errors import SpecError


def location(results: str) -> str:
    """A results folder as Ray and MLflow name it: a URI as given (no trailing /), a local path
    with `~` expanded and made absolute against the cwd.

    The one resolver for `storage:` and for results folders: `run`, `resume`, `report` and
    `collapsetune.preflight` all go through it, so `storage: ~/results` means the home folder.

    Example:
        >>> location("s3://bucket/results/")
        's3://bucket/results'
    """
    if "://" in results:
        return results.rstrip("/")
    return str(Path(results).expanduser().resolve())


def _filesystem(folder: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if "://" in folder:
        return pyarrow.fs.FileSystem.from_uri(folder)
    return pyarrow.fs.LocalFileSystem(), location(folder)


def write_text(folder: str, name: str, text: str) -> None:
    fs, root = _filesystem(folder)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{name}") as out:
        out.write(text.encode())


def read_text(folder: str, name: str) -> str:
    """The file's text; a SpecError naming the folder when it is not a sweep's results folder."""
    fs, root = _filesystem(folder)
    try:
        with fs.open_input_stream(f"{root}/{name}") as stream:
            return stream.read().decode()
    except (FileNotFoundError, OSError) as exc:
        raise SpecError(
            f"no {name} here: not a collapsetune results folder ({exc.__class__.__name__})", file=folder
        ) from None
