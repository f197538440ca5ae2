"""Task distortion, the distortion-rate fit and bit allocation against theory (synthetic
surfaces), and ``dfsim fit-rd`` on committed results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfsim.errors import UserError
from dfsim.experiment.rate_distortion import DRFit, fit_dr, manifest_reference, task_distortion
from dfsim.experiment.rd_allocation import (
    allocate,
    allocate_weighted,
    measured_box,
    nearest_operating_point,
    nondominated,
    pareto_front_two_streams,
    tasks_report,
)


def surface(gamma, alpha, beta) -> DRFit:
    a, b = np.asarray(alpha, float), np.asarray(beta, float)
    return DRFit(gamma, a, b, 1.0, np.zeros(0))


# --------------------------------------------------------------------------- distortion
def test_task_distortion_formula_and_zero_reference():
    d = task_distortion([0.93, 0.9, 0.96, 0.0], 0.93)
    np.testing.assert_allclose(d, [0.0, 3 / 0.93, 3 / 0.93, 100.0])
    with pytest.raises(UserError, match="reference metric is 0.0"):
        task_distortion([0.5], 0)


def test_manifest_reference_of_committed_runs(tmp_path):
    assert manifest_reference("results/rate-accuracy", "top1") == 0.93
    assert manifest_reference("results/paper/efficientnet", "coding_agreement") == 1.0
    with pytest.raises(UserError, match=r"no loss-free reference 'clean_top1'.*clean_agreement"):
        manifest_reference("results/paper/efficientnet", "top1")  # unlabelled: NaN
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(UserError, match="cannot read"):
        manifest_reference(tmp_path, "top1")


# --------------------------------------------------------------------------- fit
def test_fit_recovers_one_stream_parameters():
    rng = np.random.default_rng(1)
    r = np.linspace(5, 200, 40)
    truth = 2.0 + 80.0 * np.exp2(-0.04 * r)
    fit = fit_dr(r, truth + rng.normal(0, 0.3, r.size), names=["kbpi"])
    assert fit.gamma == pytest.approx(2.0, abs=0.3)
    assert fit.alpha[0] == pytest.approx(80.0, rel=0.03)
    assert fit.beta[0] == pytest.approx(0.04, rel=0.03)
    assert fit.r2 > 0.99
    assert abs(fit.residuals.mean()) < 0.1
    assert fit.predict(100.0) == pytest.approx(2.0 + 80.0 * 2**-4, abs=0.3)
    assert fit.as_dict()["rates"] == ["kbpi"]


def test_fit_recovers_two_stream_parameters_and_scores_held_out_points():
    rng = np.random.default_rng(2)
    r = rng.uniform(0, 60, size=(120, 2))
    true = surface(1.0, [30.0, 10.0], [0.1, 0.05])
    d = true.predict(r) + rng.normal(0, 0.2, len(r))
    fit = fit_dr(r[:40], d[:40])
    np.testing.assert_allclose(fit.alpha, [30, 10], rtol=0.1)
    np.testing.assert_allclose(fit.beta, [0.1, 0.05], rtol=0.1)
    assert fit.gamma == pytest.approx(1.0, abs=0.5)
    held = fit.score(r[40:], d[40:])
    assert held["r2"] > 0.98 and abs(held["residual_mean"]) < 0.1
    assert held["residual_sd"] == pytest.approx(0.2, rel=0.3) and held["n_points"] == 80


def test_fit_refuses_too_few_points_and_nan():
    with pytest.raises(UserError, match=r"4 points for 5 parameters \(1 \+ 2 x 2 streams\)"):
        fit_dr(np.ones((4, 2)), np.ones(4))
    with pytest.raises(UserError, match="finite"):
        fit_dr([1, 2, 3], [1, np.nan, 3])


# --------------------------------------------------------------------------- allocation
def brute_force(fit: DRFit, rt: float, steps: int = 2001) -> np.ndarray:
    r1 = np.linspace(0, rt, steps)
    pts = np.column_stack([r1, rt - r1])
    return pts[np.argmin(fit.predict(pts))]


@pytest.mark.parametrize("alpha,beta", [([30, 10], [0.1, 0.05]), ([5, 50], [0.2, 0.02])])
def test_closed_form_equals_grid_search(alpha, beta):
    fit = surface(1.0, alpha, beta)
    a = allocate(fit, 80.0)
    assert a.rates.sum() == pytest.approx(80.0)
    np.testing.assert_allclose(a.rates, brute_force(fit, 80.0), atol=80 / 2000)
    assert a.distortion[0] == pytest.approx(fit.predict(brute_force(fit, 80.0)), abs=1e-4)


def test_equal_beta_split_and_clipping():
    # equal beta: R_1 - R_2 = log2(alpha_1 / alpha_2) / beta, the rest shared equally
    a = allocate(surface(0, [40, 10], [0.5, 0.5]), 20.0)
    np.testing.assert_allclose(a.rates, [10 + 2, 10 - 2])
    # a stream whose first bit is worth less than the other's last gets none
    a = allocate(surface(0, [100, 1], [1.0, 1.0]), 3.0)
    np.testing.assert_allclose(a.rates, [3.0, 0.0])
    np.testing.assert_allclose(a.rates, brute_force(surface(0, [100, 1], [1, 1]), 3.0))
    three = allocate(surface(0, [100, 50, 0.01], [1.0, 1.0, 1.0]), 4.0)
    np.testing.assert_allclose(three.rates, [2.5, 1.5, 0.0])


def test_nearest_operating_point():
    fit = surface(0, [40, 10], [0.5, 0.5])
    alloc = allocate(fit, 20.0)
    pts = [[4, 4], [12, 8], [8, 12], [20, 20]]
    op = nearest_operating_point(alloc, pts, labels=["a", "b", "c", "d"])
    assert (op.label, op.index) == ("b", 1)  # [20, 20] costs too much; b is the optimum
    assert op.distortion == pytest.approx(alloc.distortion[0])
    with pytest.raises(UserError, match="total rate 5 is below every operating point.*8"):
        nearest_operating_point(allocate(fit, 5.0), pts)


def test_weighted_allocation_reduces_to_one_task_and_moves_with_weights():
    f1, f2 = surface(0, [40, 1], [0.3, 0.3]), surface(0, [1, 40], [0.3, 0.3])
    one = allocate_weighted([f1, f2], [1, 0], 30.0)
    np.testing.assert_allclose(one.rates, allocate(f1, 30.0).rates, atol=1e-3)
    even = allocate_weighted([f1, f2], [1, 1], 30.0)
    np.testing.assert_allclose(even.rates, [15, 15], atol=1e-3)
    with pytest.raises(UserError, match="2 weights for 1 tasks"):
        allocate_weighted([f1], [1, 1], 30.0)


def test_pareto_front_is_nondominated_and_monotone():
    f1, f2 = surface(0, [40, 5], [0.3, 0.2]), surface(0, [5, 40], [0.2, 0.3])
    front = pareto_front_two_streams([f1, f2], 30.0, n=51)
    d = front.distortion[front.nondominated]
    assert 2 < len(d) <= 51
    assert not nondominated(np.vstack([d, d.min(axis=0) - 1e-9]))[:-1].any()
    for i in range(len(d)):  # no front point dominates another
        other = np.delete(d, i, axis=0)
        assert not ((other <= d[i]).all(axis=1) & (other < d[i]).any(axis=1)).any()
    order = np.argsort(d[:, 0])
    assert (np.diff(d[order, 1]) <= 1e-12).all()  # less of one task's, more of the other's
    with pytest.raises(UserError, match="two streams"):
        pareto_front_two_streams([surface(0, [1], [1])], 30.0)


def test_nondominated_simple():
    mask = nondominated([[1, 3], [2, 2], [3, 1], [2, 3], [3, 3]])
    assert mask.tolist() == [True, True, True, False, False]


# --------------------------------------------------------------------------- dfsim fit-rd
def test_fit_rd_on_committed_rate_accuracy(capsys, tmp_path):
    from dfsim.tools.cli import main

    assert main(["fit-rd", "results/rate-accuracy", "--json", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["metric"], out["reference"], out["loss_rate"]) == ("top1", 0.93, 0.0)
    curves = {f["curve"]: f for f in out["fits"]}
    assert list(curves) == ["codec raw", "codec zstd", "codec range", "codec palette"]
    for f in curves.values():  # six bit depths each; a steep, well-fitted decay
        assert f["n_points"] == 6 and f["r2"] > 0.99 and f["beta"][0] > 0.1
    assert (tmp_path / "rd_fit.png").stat().st_size > 0 and (tmp_path / "rd_fit.svg").is_file()


def test_fit_rd_unlabelled_uses_coding_agreement_and_errors_are_one_line(capsys):
    from dfsim.tools.cli import main

    assert main(["fit-rd", "results/paper/efficientnet"]) == 0
    text = capsys.readouterr().out
    assert "coding_agreement at loss rate 0" in text and "with A = 1 " in text
    assert text.count("R2 0.9") == 3  # input, _blocks.4, _blocks.8
    assert main(["fit-rd", "results/rate-accuracy", "--rate", "kbpi_s0,kbpi_s1"]) == 2
    assert "'kbpi_s0': not a numeric column" in capsys.readouterr().err
    assert main(["fit-rd", "results/rate-accuracy", "--loss", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--loss: no rows at loss rate 0.5" in err
    assert main(["fit-rd", "results/rate-accuracy", "--by", "codec,bits"]) == 2
    err = capsys.readouterr().err  # one point a curve
    assert "codec raw, bits 2: fit: 1 points for 3 parameters" in err


# --------------------------------------------------------------------------- SCENARIO route
TINY = """
name: tiny-rd
seed: 7
model: {name: fmnist-resnet, split: add_1}
data: {n_images: 40}
encoding: {bits: [2, 3, 4, 6]}
channels: [{kind: iid, loss_rates: [0.0]}]
methods: [zeros]
trials: 1
"""


def test_split_images_is_seeded_disjoint_and_refuses_empty_sets():
    from dfsim.experiment.rd_measure import split_images

    fit, held = split_images(40, 0.2, 3)
    assert len(fit) == 8 and len(held) == 32
    assert sorted({*fit, *held}) == list(range(40)) and not set(fit) & set(held)
    assert split_images(40, 0.2, 3)[0].tolist() == fit.tolist()
    assert split_images(40, 0.2, 4)[0].tolist() != fit.tolist()
    with pytest.raises(UserError, match="0.01 of 40 images leaves no image to fit on"):
        split_images(40, 0.01, 0)
    with pytest.raises(UserError, match="between 0 and 1"):
        split_images(40, 1.0, 0)


def test_fit_rd_scenario_held_out(capsys, tmp_path):
    from dfsim.tools.cli import main

    (tmp_path / "tiny.yaml").write_text(TINY)
    argv = ["fit-rd", str(tmp_path / "tiny.yaml"), "--fit-fraction", "0.2", "--seed", "5"]
    out_dir = tmp_path / "fig"
    assert main([*argv, "--json", "--total-rate", "60,120", "--out", str(out_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    fit_set, held = set(out["fit_images"]), set(out["held_out_images"])
    assert len(fit_set) == 8 and len(held) == 32 and not fit_set & held
    assert fit_set | held == set(range(40)) and out["seed"] == 5
    (curve,) = out["fits"]
    assert curve["fit"]["rates"] == ["kbpi"] and curve["fit"]["n_points"] == 4
    assert curve["held_out"]["n_points"] == 4
    for stats in (curve["fit"], curve["held_out"]):
        assert -1 < stats["r2"] <= 1 and np.isfinite(stats["residual_sd"])
    points = {p["config"]: p for p in curve["points"]}
    assert list(points) == ["bits 2", "bits 3", "bits 4", "bits 6"]
    # raw codes: 32x28x28 values of n bits per image plus the min/max side information
    assert points["bits 4"]["rates_held_out"][0] == pytest.approx(32 * 28 * 28 * 4 / 1e3, rel=0.01)
    assert points["bits 2"]["distortion_held_out"] > 20 > points["bits 6"]["distortion_held_out"]
    low, high = curve["allocations"]
    assert low["allocation"]["nearest"]["config"] == "bits 2"  # the only one under 60
    assert high["allocation"]["nearest"]["config"] == "bits 4"  # 100 kbpi; bits 6 is 150
    assert (
        high["equal"]["nearest"]["measured_distortion"] == points["bits 4"]["distortion_held_out"]
    )
    assert (out_dir / "rd_fit.png").stat().st_size > 0 and (out_dir / "rd_fit.svg").is_file()

    assert main([*argv, "--total-rate", "20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "total rate 20 is below every operating point (the smallest needs 50.2" in err


def test_fit_rd_tells_dir_from_scenario(capsys, tmp_path):
    from dfsim.tools.cli import main

    assert main(["fit-rd", str(tmp_path)]) == 2  # a directory, but no results
    assert "a directory without results.csv" in capsys.readouterr().err
    assert main(["fit-rd", "results/rate-accuracy", "--fit-fraction", "0.2"]) == 2
    assert "--fit-fraction: for a SCENARIO" in capsys.readouterr().err
    assert main(["fit-rd", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["fit-rd", "results/rate-accuracy", "--total-rate", "x"]) == 2
    assert "--total-rate: 'x' is not a number" in capsys.readouterr().err


def test_fit_rd_dir_total_rate(capsys):
    from dfsim.tools.cli import main

    argv = ["fit-rd", "results/rate-accuracy", "--by", "", "--total-rate", "30"]
    assert main([*argv, "--json"]) == 0
    (fit,) = json.loads(capsys.readouterr().out)["fits"]
    (a,) = fit["allocations"]
    assert a["total_rate"] == 30 and a["allocation"]["rates"] == [30]
    assert a["allocation"]["nearest"]["rates"][0] <= 30
    assert "measured_distortion" not in a["allocation"]["nearest"]
    assert main([*argv[:-1], "30,1000", "--total-rate", "50"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "R_t" in ln]
    assert [ln.split(":")[0].strip() for ln in lines] == ["R_t 30", "R_t 1000", "R_t 50"]
    assert lines[0].startswith("    R_t 30: allocation kbpi 30 (model D ")


def test_allocation_report_splits_and_measured_points():
    from dfsim.experiment.rd_allocation import allocation_report

    fit = surface(0, [40, 10], [0.5, 0.5])
    pts, labels = [[4, 4], [12, 8], [10, 10], [16, 4], [20, 20]], list("abcde")
    measured = [9.0, 1.0, 2.0, 3.0, 0.5]
    r = allocation_report(fit, 20.0, pts, labels, sizes=[3, 1], measured=measured)
    np.testing.assert_allclose(r["allocation"]["rates"], [12, 8])
    assert r["allocation"]["nearest"] == {
        "config": "b",
        "rates": [12.0, 8.0],
        "model_distortion": pytest.approx(r["allocation"]["model_distortion"]),
        "measured_distortion": 1.0,
    }
    assert r["equal"]["rates"] == [10, 10] and r["equal"]["nearest"]["config"] == "c"
    assert r["proportional"]["rates"] == [15, 5]
    assert r["proportional"]["nearest"]["config"] == "d"  # [16, 4]: nearest to [15, 5]
    assert r["proportional"]["nearest"]["measured_distortion"] == 3.0
    with pytest.raises(UserError, match="total rate 7 is below every operating point.*8"):
        allocation_report(fit, 7.0, pts, labels)


# --------------------------------------------------------------------------- several tasks
def test_tasks_report_weighted_own_and_pareto():
    f1, f2 = surface(1, [40, 5], [0.3, 0.2]), surface(2, [5, 40], [0.2, 0.3])
    pts = np.array([[5.0, 5.0], [10.0, 20.0], [20.0, 10.0], [15.0, 15.0], [40.0, 40.0]])
    labels = [f"c{i}" for i in range(len(pts))]
    measured = np.array([[9, 8, 7, 6, 5], [1, 2, 3, 4, 5]], float)
    r = tasks_report([f1, f2], [1, 1], 30.0, pts, labels, measured)
    w = allocate_weighted([f1, f2], [1, 1], 30.0)
    assert r["weighted"]["rates"] == pytest.approx(w.rates.tolist())
    assert r["weighted"]["model_distortion"] == pytest.approx(w.distortion.tolist())
    # the affordable config nearest the weighted rates (the symmetric problem: 15, 15)
    assert r["weighted"]["rates"] == pytest.approx([15, 15], abs=1e-3)
    assert r["weighted"]["nearest"]["config"] == "c3"
    assert r["weighted"]["nearest"]["measured_distortion"] == [6.0, 4.0]
    for own, f in zip(r["own"], (f1, f2), strict=True):
        assert own["rates"] == pytest.approx(allocate(f, 30.0).rates.tolist())
    # each task's own allocation is best for it, the weighted one in between
    assert r["own"][0]["model_distortion"][0] <= r["weighted"]["model_distortion"][0]
    assert r["own"][1]["model_distortion"][1] <= r["weighted"]["model_distortion"][1]
    lo, hi = r["pareto"]["share_s0"]
    assert 0.5 - 1e-9 >= lo > 0 and 1 > hi >= 0.5 - 1e-9  # the two optima lie either side
    # the front is kept inside the measured rates: stream 0 between 5 and 40 of 30
    box = measured_box(pts)
    assert box == ((5.0, 40.0), (5.0, 40.0))
    front = pareto_front_two_streams([f1, f2], 30.0, bounds=box)
    assert front.rates.min() >= 5 - 1e-9
    with pytest.raises(UserError, match="no split of 8 keeps both rates"):
        pareto_front_two_streams([f1, f2], 8.0, bounds=box)
    with pytest.raises(UserError, match="below every operating point"):
        tasks_report([f1, f2], [1, 1], 9.0, pts, labels)


def test_fit_rd_several_metrics_on_a_two_stream_run(capsys, tmp_path):
    from dfsim.tools.cli import main

    argv = [
        "fit-rd", "results/rd-allocation", "--loss", "0.1", "--method", "altec",
        "--rate", "kbpi_s0,kbpi_s1", "--metric", "top1,agreement", "--total-rate", "150,250",
    ]  # fmt: skip
    assert main([*argv, "--json", "--weights", "3,1", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"] == ["top1", "agreement"] and out["weights"] == [3.0, 1.0]
    single = []
    for m in ("top1", "agreement"):
        assert main([*argv[:8], "--metric", m, "--json"]) == 0
        single.append(json.loads(capsys.readouterr().out)["fits"][0])
        assert out["fits"][m][0]["alpha"] == pytest.approx(single[-1]["alpha"])
    (curve,) = out["allocations"]
    assert [r["total_rate"] for r in curve["reports"]] == [150, 250]
    fits = [DRFit(s["gamma"], np.array(s["alpha"]), np.array(s["beta"]), 1.0, np.zeros(0))
            for s in single]  # fmt: skip
    w = allocate_weighted(fits, [3, 1], 150)
    assert curve["reports"][0]["weighted"]["rates"] == pytest.approx(w.rates.tolist(), rel=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rd_fit_agreement.png", "rd_fit_agreement.svg", "rd_fit_top1.png", "rd_fit_top1.svg",
        "rd_pareto.png", "rd_pareto.svg",
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "together, weights top1 1, agreement 1:" in text
    assert text.count("R_t ") == 2 and "top1's own kbpi_s0" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metric", "top1,agreement", "--weights", "1"], "--weights: 1 weights for 2 metrics"),
        (["--metric", "top1", "--weights", "1,1"], "--weights: needs several metrics"),
        (["--metric", "top1,agreement", "--weights", "a,b"], "--weights: 'a' is not a number"),
        (["--metric", "top1,nope"], "--metric: 'nope' is not a metric"),
        (["--metric", "top1,top1"], "--metric: 'top1,top1' names a metric twice"),
        (["--metric", "top1,agreement", "--seed", "3"], "--seed: for a SCENARIO;"),
        (
            ["--metric", "top1,agreement", "--total-rate", "50"],
            "total rate 50 is below every operating point (the smallest needs 100.48)",
        ),
    ],
)
def test_fit_rd_several_metrics_errors(capsys, extra, message):
    from dfsim.tools.cli import main

    argv = ["fit-rd", "results/rd-allocation", "--rate", "kbpi_s0,kbpi_s1", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err
