"""Every committed figure, redrawn from the committed results (not saved): short legends,
no two series of one panel alike, a method's colour the same in every figure of a study,
no text outside the figure, and no matplotlib warning."""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from dfsim.tools import figures  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def legend_entries(fig) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    return [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]


def series(ax) -> list[tuple]:
    """(label, colour, line style, marker) of each data line of ``ax`` with a label."""
    from matplotlib.colors import to_hex

    return [
        (ln.get_label(), to_hex(ln.get_color()), ln.get_linestyle(), ln.get_marker())
        for ln in ax.get_lines()
        if not ln.get_label().startswith("_") and len(ln.get_xdata()) > 1
    ]


def method_colours(fig) -> dict[str, str]:
    """The colour of each method named in a legend entry ``method — group`` or ``method``."""
    from matplotlib.colors import to_hex

    out = {}
    for ax in fig.axes:
        for ln in ax.get_lines():
            label = ln.get_label()
            if label.startswith("_") or "no loss" in label:
                continue
            out.setdefault(label.split(" — ")[0], set()).add(to_hex(ln.get_color()))
    return out


def drawn_texts(fig) -> list:
    """Every text the figure draws: titles, axis labels, the tick labels in view, data
    labels and legends."""
    texts = [*fig.texts, *(t for lg in fig.legends for t in lg.get_texts())]
    for ax in fig.axes:
        if not ax.axison:
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        texts += ax.texts
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if lo - 1e-9 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi - lo):
                    texts += [tick.label1, tick.label2]
    return [t for t in texts if t.get_visible() and t.get_text()]


def clipped_texts(fig) -> list[str]:
    """Texts reaching outside the figure, and data labels (an axes' own texts) reaching
    outside their axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)

    def outside(e, box) -> bool:
        return e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1

    out = [
        t.get_text() for t in drawn_texts(fig) if outside(t.get_window_extent(renderer), fig.bbox)
    ]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts if outside(t.get_window_extent(renderer), ax.bbox)]
    return out


STUDIES = sorted({dirs[0] for dirs, _ in figures.FIGURES})


def test_every_entry_names_committed_results():
    for dirs, _ in figures.FIGURES:
        for d in dirs:
            assert (ROOT / d / "results.csv").is_file(), d


@pytest.mark.parametrize("study", STUDIES)
def test_committed_figures_read_well(study):
    import matplotlib

    matplotlib.rcParams["figure.dpi"] = 40
    colours: dict[str, set] = defaultdict(set)
    for dirs, spec in figures.FIGURES:
        if dirs[0] != study:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            drawn = figures.draw(dirs, spec, (), ROOT)
            for fig in drawn:
                what = f"{dirs}: {spec}"
                assert len(legend_entries(fig)) <= 10, what
                for ax in fig.axes:
                    looks = [s[1:] for s in series(ax)]
                    assert len(looks) == len(set(looks)), (what, series(ax))
                assert clipped_texts(fig) == [], what
                by_method = method_colours(fig)
                if len(by_method) > 1:  # coloured by method (one method: by codec or group)
                    for m, c in by_method.items():
                        assert len(c) == 1, (what, m)
                        colours[m] |= c
    assert {m: c for m, c in colours.items() if len(c) > 1} == {}


def test_example_box_labels_stay_inside_their_image():
    """A detection label above the image's top edge or past its right edge is moved in."""
    import matplotlib.pyplot as plt
    import numpy as np

    from dfsim.tools.examples import _labels_inside

    fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
    for ax in axes:
        ax.imshow(np.zeros((96, 96)), cmap="gray")
        ax.text(2, 1, "person 0.93", fontsize=5, va="bottom")  # above the top edge
        ax.text(90, 50, "bicycle 0.88", fontsize=5, va="bottom")  # past the right edge
    assert len(clipped_texts(fig)) == 4
    _labels_inside(fig, axes)
    assert clipped_texts(fig) == []
    plt.close(fig)
