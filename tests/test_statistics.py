"""Summary statistics against hand-computed values; the compare command."""

import math

import pytest

from dfsim.experiment.results import ResultsSchema, mean_ci95, write_results_csv
from dfsim.experiment.statistics import markdown_table, paired_t_pvalue, summarize
from dfsim.tasks.classification import Classification
from dfsim.tools.cli import main

SCHEMA = ResultsSchema(Classification(), ("split", "order"))


def full_row(r: dict) -> dict:
    """A row with every column of the schema (0 where the test does not care)."""
    return {k: r.get(k, 0) for k in SCHEMA.columns} | {"split": "add_1", "order": "row-major"}


def test_mean_sd_and_95_interval_by_hand():
    mean, sd, half = mean_ci95([1, 2, 3, 4, 5])
    assert mean == 3 and sd == pytest.approx(math.sqrt(2.5))
    assert half == pytest.approx(2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5))  # t_{0.975, 4}
    assert mean_ci95([0.7]) == (0.7, 0.0, 0.0)


def test_paired_t_test_by_hand():
    from scipy import stats

    a, b = [1, 2, 3, 4], [0, 2, 2, 5]
    d = [1, 0, 1, -1]
    m = sum(d) / 4
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / 3)
    t = m / (sd / 2)
    assert paired_t_pvalue(a, b) == pytest.approx(2 * stats.t.sf(abs(t), 3))
    assert paired_t_pvalue([1, 2], [1, 2]) == 1.0  # never differ
    assert paired_t_pvalue([2, 3], [1, 2]) == 0.0  # always differ by the same amount


def rows_for(method, top1s, loss=0.1):
    return [
        {
            "method": method,
            "channel": "iid",
            "loss_rate": loss,
            "burst_length": 1 / (1 - loss),
            "trial": t,
            "top1": v,
            "agreement": v,
            "realised_loss_rate": loss,
            "completion_ms_per_tensor": 1.0,
            "mse_lost": 0.5,
            "completion_iters": 0.0,
            "latency_p95_ms": 30.0,
        }
        for t, v in enumerate(top1s)
    ]


def test_summary_rows_and_paired_comparison():
    rows = (
        rows_for("zeros", [0.5, 0.6, 0.55])
        + rows_for("altec", [0.8, 0.82, 0.79])
        + rows_for("zeros", [0.9, 0.9, 0.9], loss=0.0)
    )
    s = summarize([full_row(r) for r in rows], SCHEMA, "zeros")
    assert [(r["method"], r["loss_rate"]) for r in s] == [
        ("zeros", 0.1),
        ("altec", 0.1),
        ("zeros", 0.0),
    ]
    altec = s[1]
    assert altec["trials"] == 3 and altec["top1_mean"] == pytest.approx(0.80333333)
    assert altec["top1_diff_vs_reference"] == pytest.approx(0.80333333 - 0.55)
    assert altec["p_vs_reference"] < 0.05 and math.isnan(s[0]["p_vs_reference"])
    table = markdown_table(s, SCHEMA, "top1")
    line = next(x for x in table.splitlines() if x.startswith("| iid | 0.1 "))
    assert "**80.3 ± " in line and "*" in line.split("|")[-2]


def test_summary_tests_the_metric_asked_for():
    rows = rows_for("zeros", [0.5, 0.6, 0.55]) + rows_for("altec", [0.8, 0.82, 0.79])
    for r in rows[3:]:
        r["agreement"] = r["top1"] - 0.5  # worse than the reference in agreement
    s = summarize([full_row(r) for r in rows], SCHEMA, "zeros", metric="agreement")
    assert "top1_diff_vs_reference" not in s[1]
    assert s[1]["agreement_diff_vs_reference"] == pytest.approx(0.30333333 - 0.55)


def test_bd_rates_as_data_and_why_not():
    from dfsim.experiment.statistics import bd_rate, bd_rates

    def point(codec, bits, kbpi, top1):
        return full_row({"method": "zeros", "channel": "iid", "trial": 0, "top1": top1}) | {
            "codec": codec,
            "bits": bits,
            "kbpi": kbpi,
        }

    schema = ResultsSchema(Classification(), ("codec", "bits"))
    a = [("a", b, k, t) for b, k, t in [(2, 10.0, 0.5), (4, 20.0, 0.7), (6, 30.0, 0.8)]]
    b = [("b", b, k, t) for b, k, t in [(2, 8.0, 0.5), (4, 16.0, 0.7), (6, 24.0, 0.8)]]
    c = [("c", 2, 5.0, 0.5)]  # one point: no curve to compare
    rows = [point(*p) for p in a + b + c]
    found = bd_rates(rows, schema, "top1", "kbpi", "codec", anchor="a")
    assert [(r["curve"], r["anchor"], r["method"]) for r in found] == [
        ("b", "a", "zeros"),
        ("c", "a", "zeros"),
    ]
    ref = [(k, t) for _, _, k, t in a]
    assert found[0]["bd_rate"] == pytest.approx(bd_rate(ref, [(k, t) for _, _, k, t in b]))
    assert found[0]["bd_rate"] == pytest.approx(-20.0, abs=0.5) and found[0]["note"] == ""
    assert math.isnan(found[1]["bd_rate"])
    assert found[1]["note"] == "fewer than two points where the metric rises with the rate"
    with pytest.raises(KeyError):
        bd_rates(rows, schema, "top1", "kbpi", "codec", anchor="zz")


def test_compare_prints_table_and_rejects_missing_dirs(tmp_path, capsys):
    d = tmp_path / "r"
    d.mkdir()
    rows = [full_row(r) for r in rows_for("zeros", [0.5, 0.6]) + rows_for("linear", [0.7, 0.72])]
    write_results_csv(rows, SCHEMA, d / "results.csv")
    assert main(["compare", str(d)]) == 0
    out = capsys.readouterr().out
    assert "`linear`" in out and "**71.0 ± " in out
    assert main(["compare", str(d), "--metric", "mse_lost"]) == 0
    assert "lowest is best" in capsys.readouterr().out
    assert main(["compare", str(d), "--metric", "colour"]) == 2
    assert "--metric: 'colour' is not a metric of these results" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nope")]) == 2
    assert "no results.csv" in capsys.readouterr().err


def test_plot_writes_png_and_svg_with_one_series_per_method_and_channel(tmp_path, capsys):
    d = tmp_path / "r"
    rows = []
    for loss in (0.1, 0.3):
        for r in rows_for("zeros", [0.5, 0.6], loss) + rows_for("altec", [0.8, 0.82], loss):
            rows.append(full_row(r))
    write_results_csv(rows, SCHEMA, d / "results.csv")
    assert main(["plot", str(d), "--y", "agreement"]) == 0
    for name in ("agreement_vs_loss_rate", "completion_time"):
        assert (d / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    svg = (d / "agreement_vs_loss_rate.svg").read_text()
    # one legend entry per (method, channel): i.i.d. is one line although its burst varies with loss
    assert svg.count("zeros — i.i.d.") == 1 and svg.count("altec — i.i.d.") == 1
    assert "top-1 agreement with the loss-free model (%)" in svg and "packet loss rate (%)" in svg
    assert main(["plot", str(d), "--by", "colour"]) == 2
    assert "--by: unknown field 'colour'" in capsys.readouterr().err
    assert main(["plot", str(d), "--panels", "colour"]) == 2
    assert "--panels: unknown field 'colour'" in capsys.readouterr().err
    assert main(["plot", str(d), "--panels", "loss_rate", "--x", "loss_rate"]) == 0
    assert (d / "top1_vs_loss_rate_by_loss_rate.svg").is_file()


def test_panels_split_a_burst_sweep_by_loss_rate_with_iid_as_markers(tmp_path):
    from dfsim.experiment import plots

    rows = []
    for loss in (0.1, 0.3):
        for burst in (2.0, 4.0):
            for method, top1 in (("zeros", 0.5), ("altec", 0.8)):
                rows += [
                    {**r, "channel": "gilbert-elliott", "burst_length": burst}
                    for r in rows_for(method, [top1, top1 + 0.01, top1 - 0.01], loss)
                ]
        rows += rows_for("zeros", [0.6, 0.61, 0.59], loss) + rows_for(
            "altec", [0.85, 0.86, 0.84], loss
        )
    svg = tmp_path / "p.svg"
    rows = [
        full_row(r) | {"channel": r["channel"], "burst_length": r["burst_length"]} for r in rows
    ]
    plots.metric_plot(rows, SCHEMA, [svg], "burst_length", "top1", ("channel",), panel="loss_rate")
    text = svg.read_text()
    assert "loss 10 %" in text and "loss 30 %" in text  # one panel title per loss rate
    assert (
        "zeros — Gilbert-Elliott" in text
        and "i.i.d. loss (mean burst 1/(1-P)), same colours" in text
    )
    assert text.count("zeros — Gilbert-Elliott") == 1  # one legend for all panels


def test_average_gain_is_the_area_between_curves_over_the_range():
    """The tutorial's average gain: [AUC(method) - AUC(reference)] / range, per trial."""
    from dfsim.experiment.statistics import average_gain, gain_table

    rows = []
    for trial, bump in ((0, 0.0), (1, 0.02)):
        for loss, ref, better in (
            (0.0, 0.9, 0.9),
            (0.1, 0.8, 0.85),
            (0.3, 0.5, 0.7),
            (0.5, 0.1, 0.5),
        ):
            for method, value in (("zeros", ref), ("linear", better + bump * (loss > 0))):
                rows.append(
                    {
                        "method": method,
                        "channel": "iid",
                        "loss_rate": loss,
                        "burst_length": 1.0,
                        "trial": trial,
                        "n_images": 10,
                        "top1": value,
                        "split": "s",
                    }
                )
    schema = ResultsSchema.for_rows(Classification(), rows)
    gains = {g["method"]: g for g in average_gain(rows, schema, "top1", "zeros", (0.0, 0.3))}
    # trial 0: trapezoids of (0, 0.05, 0.2) over 0-0.1-0.3 = 0.0025 + 0.025; / 0.3
    g0 = (0.1 * 0.05 / 2 + 0.2 * 0.25 / 2) / 0.3
    g1 = (0.1 * 0.07 / 2 + 0.2 * 0.29 / 2) / 0.3
    assert gains["linear"]["gain"] == pytest.approx((g0 + g1) / 2)
    assert gains["linear"]["trials"] == 2 and gains["linear"]["loss_rates"] == "0-30 %"
    assert gains["zeros"]["gain"] == 0.0
    table = gain_table(list(gains.values()), schema, "top1", 0.0, 0.3)
    assert f"{100 * (g0 + g1) / 2:.2f} ± " in table
