"""Old module paths that still import, with a deprecation warning.

dfsim's modules were grouped into wings (``transport``, ``data``, ``experiment``,
``tools``); code written against the flat layout (``import dfsim.channels``) keeps working:
the old name is the new module itself, so classes, registrations and pickles are shared.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "dfsim.packets": "dfsim.transport.packets",
    "dfsim.channels": "dfsim.transport.channels",
    "dfsim.network": "dfsim.transport.network",
    "dfsim.receiver": "dfsim.transport.receiver",
    "dfsim.error_control": "dfsim.transport.error_control",
    "dfsim.fec": "dfsim.transport.fec",
    "dfsim.datasets": "dfsim.data.datasets",
    "dfsim.coco": "dfsim.data.coco",
    "dfsim.scenes": "dfsim.data.scenes",
    "dfsim.scenario": "dfsim.experiment.scenario",
    "dfsim.results": "dfsim.experiment.results",
    "dfsim.statistics": "dfsim.experiment.statistics",
    "dfsim.checkpoint": "dfsim.experiment.checkpoint",
    "dfsim.profiling": "dfsim.experiment.profiling",
    "dfsim.plots": "dfsim.experiment.plots",
    "dfsim.cli": "dfsim.tools.cli",
    "dfsim.bench": "dfsim.tools.bench",
    "dfsim.bench_codecs": "dfsim.tools.bench_codecs",
    "dfsim.examples": "dfsim.tools.examples",
    "dfsim.precompile": "dfsim.tools.precompile",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and hands back the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} is now {new}; the old name will be removed in a later release",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # the module at the new place is already executed


def install() -> None:
    """Let the old module paths import (once per process)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
