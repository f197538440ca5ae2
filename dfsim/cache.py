"""On-disk cache for expensive deterministic artefacts: edge features and the full model's
predictions, the loss-free split model's predictions, fitted completion weights.

Location: ``$DFSIM_CACHE``, else ``$XDG_CACHE_HOME/dfsim``, else ``~/.cache/dfsim``.
Entries are keyed by a content hash of everything that determines them, written
atomically, and safe to delete at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    if os.environ.get("DFSIM_CACHE"):
        return Path(os.environ["DFSIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dfsim"


def key_of(**parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def load_arrays(kind: str, key: str) -> dict[str, np.ndarray] | None:
    path = cache_dir() / kind / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None  # a damaged entry is recomputed


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
    d = cache_dir() / kind
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{key}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, d / f"{key}.npz")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return d / f"{key}.npz"
