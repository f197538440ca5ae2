"""results.parquet beside a large run's results.csv, and dfsim.load reading either: the
same DataFrames (values and dtypes) from both, a stale or damaged Parquet file passed over
for the CSV, the summary read from summary.csv only where it counts these trials."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import dfsim
from dfsim import api
from dfsim.experiment import results
from dfsim.experiment.results import (
    read_results_csv,
    read_results_frame,
    read_results_parquet,
    refresh_results_parquet,
    write_results_parquet,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "results" / "default"


@pytest.fixture
def copy(tmp_path):
    """results/default copied, with results.parquet written beside its CSV."""
    d = tmp_path / "run"
    shutil.copytree(DEFAULT, d)
    write_results_parquet(d / "results.csv", d / "results.parquet")
    api._STALE_NOTED.clear()
    return d


def from_rows(path: Path) -> pd.DataFrame:
    """What dfsim.load gave before: the DataFrame of read_results_csv's rows."""
    header = path.read_text().splitlines()[0].split(",")
    return pd.DataFrame.from_records(read_results_csv(path), columns=header)


def with_words(src: Path, dst: Path) -> Path:
    """``src`` with rows_per_packet 'fill' in some rows and empty in others, and a column
    no component declares holding words in some rows (a mixed and an unknown column)."""
    lines = src.read_text().splitlines()
    out = [lines[0] + ",model"]
    for i, line in enumerate(lines[1:]):
        if i % 3 == 0:
            line = line.replace(",4,row-major,", ",fill,row-major,")
        elif i % 3 == 1:
            line = line.replace(",4,row-major,", ",,row-major,")
        out.append(line + (",tensor" if i % 2 else ","))
    dst.write_text("\n".join(out) + "\n")
    return dst


def test_parquet_csv_and_rows_give_the_same_frame(copy, tmp_path):
    csv = copy / "results.csv"
    frame = read_results_frame(csv)
    pd.testing.assert_frame_equal(frame, from_rows(csv), check_exact=True)
    parquet, why = read_results_parquet(copy / "results.parquet", csv)
    assert why == ""
    pd.testing.assert_frame_equal(parquet, frame, check_exact=True)
    assert frame.trial.dtype == "int64" and frame.top1.dtype == "float64"
    assert frame.method.dtype == "str"
    # floats exact: the parquet holds the CSV's very numbers
    assert parquet.completion_ms_per_tensor.tolist() == [
        r["completion_ms_per_tensor"] for r in read_results_csv(csv)
    ]
    # a column of numbers and words, and one no component declares
    mixed = with_words(csv, tmp_path / "mixed.csv")
    frame = read_results_frame(mixed)
    pd.testing.assert_frame_equal(frame, from_rows(mixed), check_exact=True)
    assert frame.rows_per_packet.dtype == object
    assert set(frame.rows_per_packet.dropna()) == {4, "fill"}
    write_results_parquet(mixed, tmp_path / "mixed.parquet")
    back, _ = read_results_parquet(tmp_path / "mixed.parquet", mixed)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)


def test_load_reads_either_file_and_gives_the_same_results(copy, tmp_path, capsys):
    from_parquet = dfsim.load(copy)
    plain = tmp_path / "plain"
    shutil.copytree(DEFAULT, plain)
    from_csv = dfsim.load(plain)
    pd.testing.assert_frame_equal(from_parquet.trials, from_csv.trials, check_exact=True)
    pd.testing.assert_frame_equal(from_parquet.summary, from_csv.summary, check_exact=True)
    assert from_parquet.methods == from_csv.methods
    assert capsys.readouterr().err == ""  # a valid parquet: no note


def test_a_stale_parquet_is_passed_over_once_with_a_note(copy, capsys):
    csv = copy / "results.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:-1]) + "\n")  # a rerun rewrote the CSV, one row fewer
    res = dfsim.load(copy)
    assert len(res.trials) == len(lines) - 2
    pd.testing.assert_frame_equal(res.trials, from_rows(csv), check_exact=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "results.parquet made from another version of results.csv: reading results.csv" in err
    dfsim.load(copy)
    assert capsys.readouterr().err == ""  # once per file


@pytest.mark.parametrize("damage", [b"not a parquet file", b""])
def test_a_damaged_parquet_falls_back_to_the_csv(copy, capsys, damage):
    (copy / "results.parquet").write_bytes(damage)
    res = dfsim.load(copy)
    pd.testing.assert_frame_equal(res.trials, from_rows(copy / "results.csv"), check_exact=True)
    err = capsys.readouterr().err
    assert "results.parquet unreadable (" in err and err.endswith(": reading results.csv\n")


def test_large_runs_write_parquet_and_small_ones_remove_a_leftover(copy, monkeypatch):
    assert results.PARQUET_MIN_ROWS >= 5120  # no committed results directory gets one
    parquet = copy / "results.parquet"
    parquet.unlink()
    monkeypatch.setattr(results, "PARQUET_MIN_ROWS", 100)
    refresh_results_parquet(copy, 320)
    frame, why = read_results_parquet(parquet, copy / "results.csv")
    assert why == "" and len(frame) == 320
    assert not list(copy.glob(".results.parquet.*"))  # written to a temporary, renamed
    refresh_results_parquet(copy, 100)
    assert not parquet.exists()


def test_summary_is_read_only_where_it_counts_the_trials(copy):
    from dfsim.experiment import statistics

    res = dfsim.load(copy)
    computed = pd.DataFrame(statistics.summarize(res._rows, res._schema, "zeros"))
    pd.testing.assert_frame_equal(res.summary, computed, check_exact=True)
    csv = copy / "results.csv"  # the trials of one method gone: summary.csv is stale
    kept = [ln for ln in csv.read_text().splitlines() if not ln.startswith("linear,")]
    csv.write_text("\n".join(kept) + "\n")
    (copy / "results.parquet").unlink()
    res = dfsim.load(copy)
    assert "linear" not in res.summary.method.tolist()
    assert res.summary.trials.sum() == len(res.trials)


def test_the_csv_is_hashed_when_its_size_or_time_changed(copy, capsys):
    csv, parquet = copy / "results.csv", copy / "results.parquet"
    st = csv.stat()
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a checkout: same bytes
    assert read_results_parquet(parquet, csv)[1] == ""
    text = csv.read_text()
    csv.write_text(text.replace(",0.93,", ",0.94,", 1))  # same size, another number
    assert len(csv.read_text()) == len(text)
    frame, why = read_results_parquet(parquet, csv)
    assert frame is None and why == "made from another version of results.csv"
