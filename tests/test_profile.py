"""`dfsim run --profile`: where a run's time goes, per process, without changing a number."""

import yaml
from conftest import without_timing

from dfsim.experiment import profiling
from dfsim.experiment.results import read_results_csv
from dfsim.tools.cli import main


def _scenario(tmp_path, name: str) -> str:
    scn = {
        "name": name,
        "seed": 5,
        "data": {"n_images": 40},
        "channels": [{"kind": "iid", "loss_rates": [0.0, 0.3]}],
        "methods": ["zeros", "linear", {"name": "silrtc", "max_iters": 2, "label": "silrtc"}],
        "trials": 2,
        "output": str(tmp_path / name),
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(scn))
    return str(path)


def test_profile_table_and_unchanged_results(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(profiling.ENV, raising=False)
    assert main(["run", _scenario(tmp_path, "plain"), "--quiet", "--workers", "1"]) == 0
    assert not (tmp_path / "plain" / "profile.md").exists()
    argv = ["run", _scenario(tmp_path, "prof"), "--quiet", "--workers", "1", "--profile"]
    assert main(argv) == 0
    monkeypatch.delenv(profiling.ENV, raising=False)  # --profile set it for this process
    text = (tmp_path / "prof" / "profile.md").read_text()
    assert text == capsys.readouterr().out.rstrip("\n") + "\n"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    for phase in (
        "start-up and imports (main process)",
        "data loading",
        "edge pass and full model (or cache load)",
        "network (SimPy)",
        "reassembly and decoding",
        "completion: zeros",
        "completion: silrtc",
        "cloud pass",
        "scoring (task metrics)",
        "result writing",
    ):
        assert phase in rows, phase
    # 2 settings x 2 trials: the network ran 4 times; each method completed 4 times
    assert rows["network (SimPy)"].rstrip(" |").endswith("| 4")
    assert rows["completion: silrtc"].rstrip(" |").endswith("| 4")
    seconds = [float(r.split(" | ")[2]) for k, r in rows.items() if k in ("cloud pass",)]
    assert all(s > 0 for s in seconds)
    # profiling changes no number
    plain = without_timing(read_results_csv(tmp_path / "plain" / "results.csv"))
    prof = without_timing(read_results_csv(tmp_path / "prof" / "results.csv"))
    assert [{k: v for k, v in r.items() if k != "n_images"} for r in plain] == [
        {k: v for k, v in r.items() if k != "n_images"} for r in prof
    ]


def test_table_sums_processes():
    per = {"main": {"a": [1.0, 1]}, "worker 1": {"a": [2.0, 3], "b": [1.0, 1]}}
    text = profiling.table(per, 5.0)
    assert "| a | 1.00 | 2.00 | 3.00 | 75.0 % | 4 |" in text
    assert "| b |  | 1.00 | 1.00 | 25.0 % | 1 |" in text
    assert "Wall time 5.0 s; process time in the phases 4.0 s" in text
