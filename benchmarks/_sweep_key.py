"""The content key of a sweep file as it runs, for benchmarks that keep results between runs
(collapse_bench.py's cached replays, plain_vs.py's and rescue.py's `--resume`).

The key covers the sweep file's bytes and its search space with every `include:` expanded, so
an edit to an included fragment (search_spaces/*.yaml) makes kept results stale just as an
edit to the sweep file does. Comments and layout in a fragment do not change the key; its
dimensions do.

Example:
    >>> from pathlib import Path
    >>> len(sweep_key(Path(__file__).resolve().parents[1] / "sweeps" / "mop_clip.yaml"))
    8
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sweep_key(path: Path | str) -> str:
    """8 hex digits of sha1(sweep file bytes + its resolved search space as sorted JSON)."""
    from collapsetune.spec import load_sweep, spec_to_dict

    path = Path(path)
    space = spec_to_dict(load_sweep(path))["search_space"]
    digest = hashlib.sha1(path.read_bytes())
    digest.update(b"\0" + json.dumps(space, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:8]
