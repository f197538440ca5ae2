"""numba kernels compiled once and kept in numba's on-disk cache, with a cache stamp that
covers every module they can call.

numba stamps a function's cached machine code with its own source file only. A kernel that
calls a kernel of another file would therefore load, after that other file changed, a cached
copy with the old callee compiled in (wrong results, or a crash). :func:`njit` here is
``numba.njit`` with ``cache=True`` whose stamp also holds a hash of every module of the
kernel's wing (``dfsim/codecs/``, ``dfsim/completion/``, ...: the package below the top-level
one, its subpackages included), so an edit anywhere in a wing recompiles that wing's kernels
and no others. Where numba's cache index does not have the stamp this relies on, kernels
fall back to numba's own stamp.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numba


def wing(source: Path) -> Path:
    """The folder whose modules a kernel defined in ``source`` can call: the package just
    below the top-level package (the top-level package itself for its own modules)."""
    chain = [Path(source).resolve().parent]
    while (chain[-1].parent / "__init__.py").exists():
        chain.append(chain[-1].parent)
    return chain[-2] if len(chain) >= 2 else chain[-1]


@functools.cache
def sources_hash(folder: Path) -> str:
    """A hash of every Python module under ``folder``, by relative path and content."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def njit(fn=None, **options):
    """``numba.njit(cache=True, **options)``, its cache stamped with the kernel's wing."""

    def wrap(f):
        dispatcher = numba.njit(**{"cache": True, **options})(f)
        index = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
        source = getattr(getattr(f, "__code__", None), "co_filename", None)
        if source and hasattr(index, "_source_stamp"):
            index._source_stamp = (index._source_stamp, sources_hash(wing(Path(source))))
        return dispatcher

    return wrap(fn) if fn is not None else wrap
