"""``dfsim bench completion``: one call's time beside the batched path's, and their ratio."""

import numpy as np
import pytest

from dfsim import completion
from dfsim.tools.bench.completion import time_method
from dfsim.tools.bench.tables import completion_case_header, completion_row
from dfsim.transport.packets import PacketLayout


def test_time_method_reports_the_batched_time_per_tensor_and_the_ratio():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 5)).astype(np.float32)
    layout = PacketLayout.for_shape(x.shape[1:], 2)
    lost = np.zeros(x.shape, bool)
    lost[:, 1, 2:4] = True
    r = time_method(completion.make("linear"), x, np.where(lost, 0, x), lost, layout, 3, 4)
    assert r["ms_per_tensor_batched"] > 0 and r["tensors_per_s_batched"] > 0
    assert r["single_vs_batched"] > 0
    # the ratio is single over batched (each rounded for the report)
    assert r["single_vs_batched"] * r["ms_per_tensor_batched"] == pytest.approx(
        r["ms_per_tensor"], rel=0.05, abs=2e-4
    )


def test_the_table_has_the_batched_time_and_the_ratio():
    header = completion_case_header("real", (32, 28, 28), 4, 0.3, 0.3, 4.0, 256).splitlines()
    columns = header[-1]
    assert columns.index("ms/tensor") < columns.index("ms/tensor (batch)")
    assert columns.rstrip().endswith("ms/tensor (batch) single/batch")
    r = {
        "ms_per_tensor": 0.25,
        "ms_per_iter": None,
        "iters": 0.0,
        "mse": 0.125,
        "tensors_per_s_batched": 5000.0,
        "ms_per_iter_batched": None,
        "ms_per_tensor_batched": 0.2,
        "single_vs_batched": 1.25,
    }
    row = completion_row("altec", r)
    assert row.split() == [
        "altec",
        "0.250",
        "nan",
        "0.0",
        "0.1250",
        "5000.0",
        "nan",
        "0.2000",
        "1.25",
    ]
    assert len(row) == len(columns)  # the values sit under their columns
