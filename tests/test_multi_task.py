"""Several tasks served by the same received features: ``task: [classification,
reconstruction]`` scores each row's completed features with both tasks, with the same
numbers as single-task runs where nothing is lost, and the error cases."""

import json

import pytest
from conftest import run_scenario

from dfsim.errors import UserError
from dfsim.experiment.multi_task import MultiTask, metric_columns
from dfsim.experiment.scenario import parse_scenario
from dfsim.registry import build, register, unregister
from dfsim.tasks.classification import Classification

BASE = (
    "name: mt\nseed: 3\ndata: {n_images: 24}\n"
    "channels:\n  - {kind: iid, loss_rates: [0.0, 0.3]}\nmethods: [zeros, linear]\n"
    "trials: 1\n"
)
TOP1 = ("top1", "agreement")
RECON = ("psnr", "ssim", "psnr_lossfree", "ssim_lossfree")


def _key(r):
    return r["method"], r["loss_rate"], r["trial"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    both = run_scenario(d, BASE + "task: [classification, reconstruction]\n", "b.yaml", "both")
    cls = run_scenario(d, BASE + "task: classification\n", "c.yaml", "cls")
    rec = run_scenario(d, BASE + "task: reconstruction\n", "r.yaml", "rec")
    return d, both, cls, rec


def test_rows_carry_every_tasks_metrics_equal_to_single_task_runs_without_loss(runs):
    _, both, cls, rec = runs
    assert len(both) == 4 and all(all(k in r for k in TOP1 + RECON) for r in both)
    cls_by, rec_by = {_key(r): r for r in cls}, {_key(r): r for r in rec}
    for r in both:
        if r["loss_rate"] == 0.0:
            assert {k: r[k] for k in TOP1} == {k: cls_by[_key(r)][k] for k in TOP1}
            assert {k: r[k] for k in RECON} == {k: rec_by[_key(r)][k] for k in RECON}
    # the same loss pattern as a single-task run's (same seed), shared by both tasks' columns
    lossy = [r for r in both if r["loss_rate"] == 0.3]
    assert len(lossy) == 2 and all(r["realised_loss_rate"] > 0.1 for r in lossy)
    for r in lossy:
        assert r["realised_loss_rate"] == cls_by[_key(r)]["realised_loss_rate"]
        assert r["realised_loss_rate"] == rec_by[_key(r)]["realised_loss_rate"]
        assert r["top1"] == cls_by[_key(r)]["top1"] and r["psnr"] == rec_by[_key(r)]["psnr"]
        assert r["psnr"] < 50 and r["ssim_lossfree"] < 1.0


def test_manifest_summary_and_readers(runs):
    from dfsim.api import load as load_results
    from dfsim.tools.cli.common import read_results

    d, both, _, _ = runs
    m = json.loads((d / "both" / "manifest.json").read_text())
    assert m["task"] == "classification+reconstruction"
    assert [t["name"] for t in m["scenario"]["task"]] == ["classification", "reconstruction"]
    assert [(t["name"], t["primary"]) for t in m["tasks"]] == [
        ("classification", "top1"),
        ("reconstruction", "ssim"),
    ]
    assert m["tasks"][1]["reference"]["quantized_psnr_lossfree"] == 100.0
    assert m["reference"]["quantized_top1"] == m["tasks"][0]["reference"]["quantized_top1"]
    md = (d / "both" / "summary.md").read_text()
    assert "## Task classification" in md and "Mean top1 (%)" in md and "Mean ssim ±" in md
    assert (d / "both" / "accuracy_vs_loss.png").is_file()
    _, schema = read_results(str(d / "both"))
    assert schema.metric("psnr").unit == "dB" and schema.shown_metric(both) == "top1"
    table = load_results(d / "both").compare(metric="ssim")
    assert list(table["ssim_mean"]) == pytest.approx([r["ssim"] for r in both])


def test_colliding_metric_names_get_the_task_prefix(tmp_path, capsys):
    from dfsim.api import load as load_results
    from dfsim.tools.cli import main

    @register("task", "classify-again")
    class Again(Classification):
        pass

    try:
        rows = run_scenario(tmp_path, BASE + "task: [classification, classify-again]\n")
        r = rows[0]
        assert r["classify-again_top1"] == r["top1"]
        assert r["classify-again_agreement"] == r["agreement"]
        out = str(tmp_path / "out")
        assert main(["compare", out, "--metric", "classify-again_top1"]) == 0
        assert "Mean classify-again_top1 (%)" in capsys.readouterr().out
        assert main(["plot", out, "--y", "classify-again_agreement", "--out", out]) == 0
        assert (tmp_path / "out" / "classify-again_agreement_vs_loss_rate.png").is_file()
        load_results(out).compare(metric="classify-again_top1")
        with pytest.raises(UserError, match="'classify-again_map' is not a metric"):
            load_results(out).compare(metric="classify-again_map")
    finally:
        unregister("task", "classify-again")


def test_naming_rule():
    cls, again = build("task", "classification", "t"), build("task", "classification", "t")
    assert metric_columns([("a", cls), ("b", again)]) == [
        {"top1": "top1", "agreement": "agreement"},
        {"top1": "b_top1", "agreement": "b_agreement"},
    ]
    t = MultiTask([("classification", cls), ("reconstruction", build("task", "reconstruction"))])
    assert [m.name for m in t.metrics] == [*TOP1, *RECON]
    assert (t.primary, t.label_free) == ("top1", "agreement")


def load_scenario_text(text: str):
    import yaml

    return parse_scenario(yaml.safe_load(text))


def _error(text: str) -> str:
    from dfsim.experiment.prepare import prepare

    with pytest.raises(UserError) as err:
        prepare(load_scenario_text(BASE + text))
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_errors():
    msg = _error("model: {split: add_2}\ntask: [classification, reconstruction]\n")
    assert msg == (
        "task[1]: reconstruction has a mirror model for fmnist-resnet at split add_1, "
        "fmnist-resnet-traced at split add_1.main only "
        "(got fmnist-resnet at add_2)"
    )
    msg = _error("task: [classification, detection]\n")
    assert msg.startswith("task[1].postprocess: model 'fmnist-resnet' declares no post-")
    with pytest.raises(UserError, match=r"^task\[2\]: classification is listed twice \(also "):
        load_scenario_text(BASE + "task: [classification, reconstruction, classification]\n")
    with pytest.raises(UserError, match=r"^task: an empty list"):
        load_scenario_text(BASE + "task: []\n")
    with pytest.raises(UserError, match=r"^task\[1\]: unknown task 'nope'"):
        load_scenario_text(BASE + "task: [classification, nope]\n")
    one = load_scenario_text(BASE + "task: [{name: reconstruction}]\n")
    assert one.task == load_scenario_text(BASE + "task: reconstruction\n").task


def test_example_of_several_tasks_is_one_line(runs, capsys):
    from dfsim.tools.cli import main

    d = runs[0]
    assert main(["example", str(d / "b.yaml"), "--out", str(d / "e.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "dfsim example draws one task's outcome; this scenario has several "
        "(classification+reconstruction): give it one task"
    )
    assert "\n" not in err and not (d / "e.png").exists()
