"""The per-unit metrics of experiment/trial.py computed on the lost rows only give the
numbers of the plain numpy formulas, bit for bit."""

from types import SimpleNamespace

import numpy as np

from dfsim.experiment.trial import LostRows


def _prep(references):
    return SimpleNamespace(streams=[SimpleNamespace(reference=r) for r in references])


def test_mse_on_lost_rows_equals_numpy_on_the_whole_tensors():
    rng = np.random.default_rng(7)
    refs = [
        rng.standard_normal((5, 4, 6, 9)).astype(np.float32),
        rng.standard_normal((5, 3, 7)).astype(np.float32),  # a second crossing tensor
    ]
    lost = [np.zeros(r.shape, bool) for r in refs]
    lost[0][:, :, 2:4] = rng.random((5, 4, 1, 1)) < 0.5  # whole rows, per channel
    lost[0][1, 2, 5, 3:7] = True  # and a partial row
    lost[1][rng.random(lost[1].shape) < 0.3] = True  # scattered entries
    repaired = [np.where(lo, r + rng.standard_normal(r.shape), r).astype(np.float32)
                for r, lo in zip(refs, lost, strict=True)]  # fmt: skip
    want = float(np.mean(np.square(np.concatenate(
        [(x - r)[lo] for x, r, lo in zip(repaired, refs, lost, strict=True)]
    ), dtype=np.float64)))  # fmt: skip
    at = LostRows(_prep(refs), lost)
    assert at.mse(repaired) == want
    assert at.mse([r.copy() for r in refs]) == 0.0
    # reusable across methods: a second call with other values gives that call's error
    doubled = [np.where(lo, 2 * x - r, x) for x, r, lo in zip(repaired, refs, lost, strict=True)]
    assert at.mse(doubled) == float(np.mean(np.square(np.concatenate(
        [(x - r)[lo] for x, r, lo in zip(doubled, refs, lost, strict=True)]
    ), dtype=np.float64)))  # fmt: skip
