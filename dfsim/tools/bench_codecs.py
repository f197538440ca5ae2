"""The names this module had before the benchmarks became the package
:mod:`dfsim.tools.bench`, kept so that code importing them keeps working; new code
imports from the package's modules (:mod:`~dfsim.tools.bench.codecs`,
:mod:`~dfsim.tools.bench.lossy`, :mod:`~dfsim.tools.bench.tables` ...)."""

from __future__ import annotations

from dfsim.tools.bench.cases import EFFICIENTNET_SPLITS, ROWS_PER_PACKET, Case, packet_rows
from dfsim.tools.bench.codecs import ANCHOR_IMAGES, bench_anchors, bench_codec, bench_codecs
from dfsim.tools.bench.codecs import lossless_codecs as _lossless_codecs
from dfsim.tools.bench.lossy import (
    LOSSY_IMAGES,
    LOSSY_SETTINGS,
    bench_lossy,
    bench_lossy_setting,
    lossy_summary,
)
from dfsim.tools.bench.reproductions import FIG6_ANCHORS, reproductions
from dfsim.tools.bench.tables import (
    format_table,
    markdown_table,
    print_lossy,
    tables,
    write_reproductions,
)

__all__ = [
    "ANCHOR_IMAGES",
    "Case",
    "EFFICIENTNET_SPLITS",
    "FIG6_ANCHORS",
    "LOSSY_IMAGES",
    "LOSSY_SETTINGS",
    "ROWS_PER_PACKET",
    "_lossless_codecs",
    "bench_anchors",
    "bench_codec",
    "bench_codecs",
    "bench_lossy",
    "bench_lossy_setting",
    "format_table",
    "lossy_summary",
    "markdown_table",
    "packet_rows",
    "print_lossy",
    "reproductions",
    "tables",
    "write_reproductions",
]
