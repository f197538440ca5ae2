"""On-disk cache for expensive deterministic artefacts: edge features and the full model's
predictions, the loss-free split model's predictions, fitted completion weights.

Location: ``$DFSIM_CACHE``, else ``$XDG_CACHE_HOME/dfsim``, else ``~/.cache/dfsim``.
Entries are keyed by a content hash of everything that determines them, and safe to
delete at any time. Each is written atomically (a temporary file, fsync, rename) and
sealed: ``KIND/KEY.sealed.npz`` is an ``.npz`` archive whose zip comment, its last 64
bytes, is the sha256 of the bytes before it. An entry that fails the check (truncated,
emptied, overwritten) is reported in one line on stderr, deleted and recomputed.

The helpers here (atomic writes, checksums, sealed JSON, discarding with a note) serve
every state dfsim keeps between runs: these entries, the checkpoints of unfinished runs
(dfsim.experiment.checkpoint) and the generated detection scenes (dfsim.data.scenes).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from dfsim import reproducibility
from dfsim.errors import note


def atomic_write(path: Path, write, binary: bool = False) -> None:
    """Write via ``write(file)`` (a text file, or a binary one) to a temporary file in the
    same directory, fsync'd, renamed over ``path``, the directory fsync'd: a crash at any
    instant leaves the old file or the new one, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def cache_dir() -> Path:
    if os.environ.get("DFSIM_CACHE"):
        return Path(os.environ["DFSIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dfsim"


def key_of(**parts) -> str:
    """A key for an entry determined by ``parts`` and by the CPU kernels that compute it:
    features computed with the libraries left to choose their kernels are not those of the
    pinned ones (:mod:`dfsim.reproducibility`), nor another CPU's, so they never share an
    entry."""
    s = reproducibility.state()
    kernels = s["kernels"] if s["exact"] else f"{s['kernels']} on {s['cpu']} ({s['isa_level']})"
    blob = json.dumps({**parts, "_kernels": kernels}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def checksum(data) -> bytes:
    """The sha256 of ``data`` (bytes-like) as 64 ASCII hex digits."""
    return hashlib.sha256(data).hexdigest().encode()


def is_sealed(data: bytes, end: bytes = b"") -> bool:
    """``data`` ends with the :func:`checksum` of the bytes before it, then ``end``."""
    n = len(data) - len(end) - 64
    return n >= 0 and data.endswith(end) and data[n : n + 64] == checksum(memoryview(data)[:n])


def write_atomic(path: Path, *chunks) -> None:
    """``chunks`` (bytes-like) into ``path``, atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: [f.write(chunk) for chunk in chunks], binary=True)


_JSON_END = b'"}'  # what follows the checksum in a sealed JSON file


def write_sealed_json(path: Path, payload) -> None:
    """``{"payload": PAYLOAD, "sha256": "..."}``, the checksum that of the bytes before it,
    atomically."""
    head = b'{"payload": ' + json.dumps(payload).encode() + b', "sha256": "'
    write_atomic(path, head, checksum(head), _JSON_END)


def read_sealed_json(path: Path):
    """The payload of a :func:`write_sealed_json` file; None when it fails its checksum or
    cannot be read as a file (a directory in its place, no permission)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        return json.loads(data)["payload"] if is_sealed(data, _JSON_END) else None
    except (ValueError, KeyError, TypeError):  # sealed, yet not what write_sealed_json writes
        return None


def discard(path: Path, what: str, why: str, then: str = "recomputing it") -> None:
    """Delete a damaged stored entry (a file or a directory), saying so in one line on
    stderr."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    note(f"discarded damaged {what} {path} ({why}); {then}")


def _path(kind: str, key: str) -> Path:
    return cache_dir() / kind / f"{key}.sealed.npz"


def load_arrays(kind: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``kind``/``key``; None when there are none (or they were
    damaged: then the entry is discarded with a note)."""
    path = _path(kind, key)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory in its place, no permission: damaged too
        discard(path, "cache entry", f"unreadable: {type(exc).__name__}")
        return None
    if not is_sealed(data):
        discard(path, "cache entry", "checksum mismatch")
        return None
    try:
        with np.load(io.BytesIO(data)) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - sealed but unreadable: not an entry of ours
        discard(path, "cache entry", f"unreadable: {type(exc).__name__}")
        return None


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
    """Store ``arrays`` under ``kind``/``key`` (sealed, atomically); returns the file."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with zipfile.ZipFile(buf, "a") as z:
        z.comment = b"0" * 64  # the checksum's place: the archive's last 64 bytes
    body = buf.getbuffer()[:-64]
    path = _path(kind, key)
    write_atomic(path, body, checksum(body))
    return path
