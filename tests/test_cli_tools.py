"""The helper commands: fit (ALTeC cache), bench completion, models, evaluate."""

import json

from dfsim import cache
from dfsim.tools.cli import main

SCENARIO = """\
data: {n_images: 20}
channels: [{kind: iid, loss_rates: [0.2]}]
methods: [zeros, {name: altec, fit_images: 50}]
trials: 1
"""


def test_fit_caches_altec_then_reuses_it(tmp_path, capsys):
    scn = tmp_path / "s.yaml"
    scn.write_text(SCENARIO)
    assert main(["fit", "altec", str(scn)]) == 0
    assert "fitted altec(fit_images=50) on 50 training images" in capsys.readouterr().err
    entries = list((cache.cache_dir() / "altec").glob("*.npz"))
    assert entries
    assert main(["fit", "altec", str(scn)]) == 0  # cached: nothing to do
    assert capsys.readouterr().err == ""
    assert main(["fit", "caltec", str(scn)]) == 2
    assert "no trained method 'caltec' to fit" in capsys.readouterr().err


def test_bench_completion_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert (
        main(
            [
                "bench",
                "completion",
                "--shape",
                "6x12x10",
                "--rows-per-packet",
                "3",
                "--repeats",
                "2",
                "--batch",
                "3",
                "--methods",
                "zeros,linear,halrtc",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    (case,) = report["cases"].values()
    assert case["shape"] == [6, 12, 10] and 0 < case["lost_fraction"] < 1
    m = case["methods"]
    assert set(m) == {"zeros", "linear", "halrtc"}
    assert m["halrtc"]["iters"] >= 1 and m["halrtc"]["ms_per_iter"] > 0
    assert m["halrtc"]["mse"] < m["zeros"]["mse"]  # the synthetic tensors are low-rank plus noise
    assert "ms/tensor" in capsys.readouterr().out


def test_bench_rejects_bad_arguments(capsys):
    assert main(["bench", "completion", "--shape", "6x12"]) == 2
    assert "--shape: expected CxHxW" in capsys.readouterr().err
    assert (
        main(["bench", "completion", "--shape", "6x12x10", "--loss", "0.6", "--burst", "1.2"]) == 2
    )
    assert "impossible with loss_rate 0.6" in capsys.readouterr().err


def test_models_lists_models_and_describe_lists_split_points(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fmnist-resnet (input 1x28x28, default split add_1, 5 split points" in out
    assert main(["models", "describe", "fmnist-resnet"]) == 0
    out = capsys.readouterr().out
    assert "add_1" in out and "32x28x28" in out
    assert main(["models", "describe"]) == 2
    assert "name a model" in capsys.readouterr().err


def test_evaluate_rejects_a_bad_scene_count(capsys):
    from dfsim.tools.cli import main

    assert main(["evaluate", "--model", "fmnist-detector", "--scenes", "0"]) == 2
    assert "--scenes: must be >= 1, got 0" in capsys.readouterr().err


def test_a_failed_row_of_a_bench_table_does_not_cut_the_other_rows():
    from dfsim.tools.bench.tables import format_table

    text = format_table(
        {
            "title": "codecs",
            "header": ["codec", "bits", "kbpi"],
            "rows": [
                ["raw", "8", "12.5"],
                ["broken", "error: no such library"],
                ["zstd", "8", "7"],
            ],
        }
    )
    assert text.splitlines()[1:] == [
        "codec   bits  kbpi",
        "raw     8     12.5",
        "broken  error: no such library",
        "zstd    8     7   ",
    ]
