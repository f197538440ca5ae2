"""`dfsim example`: one image through the pipeline at one loss rate, for each task."""

import json

import pytest
import yaml

from dfsim.tools.cli import main


def _scenario(tmp_path, **over) -> str:
    scn = {
        "name": "example",
        "seed": 3,
        "model": {"name": "fmnist-detector"},
        "data": {"dataset": "fmnist-scenes", "n_images": 20},
        "task": "detection",
        "packets": {"rows_per_packet": 8},
        "channels": [{"kind": "iid", "loss_rates": [0.0, 0.3]}],
        "methods": [
            "zeros",
            "linear",
            {"name": "inpaint_telea", "radius": 5, "label": "inpaint_telea"},
        ],
        "trials": 1,
        "output": str(tmp_path / "out"),
    }
    scn.update(over)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scn))
    return str(path)


@pytest.mark.parametrize(
    "over",
    [
        {},  # detection: boxes drawn
        {  # reconstruction: the mirror's images
            "model": {"name": "fmnist-resnet"},
            "data": {"dataset": "fashion-mnist", "n_images": 20},
            "task": "reconstruction",
            "packets": {"rows_per_packet": 4},
        },
    ],
    ids=["detection", "reconstruction"],
)
def test_example_figure(tmp_path, capsys, over):
    out = tmp_path / "ex.png"
    assert main(["example", _scenario(tmp_path, **over), "--loss", "0.3", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    text = capsys.readouterr().out
    shown = json.loads(text[: text.rindex("}") + 1])
    assert set(shown) >= {"image", "no recovery", "linear", "inpaint_telea", "no loss"}
    assert 0.25 <= shown["lost_share"] <= 0.5  # the default image lost 25-50 % of its values
    label_free = "agreement" if over == {} else "ssim_lossfree"
    # without loss the split model agrees with itself; zero-fill does not do better
    assert shown["no loss"][label_free] == 1.0
    assert shown["no recovery"][label_free] <= 1.0


def test_example_errors(tmp_path, capsys):
    path = _scenario(tmp_path)
    assert main(["example", path, "--loss", "0.2"]) == 2
    assert "--loss: 0.2 is not a loss rate of the scenario" in capsys.readouterr().err
    assert main(["example", path, "--methods", "silrtc"]) == 2
    assert "--methods: 'silrtc' is not a method of the scenario" in capsys.readouterr().err
    assert main(["example", path, "--image", "99"]) == 2
    assert "--image: 99 is not an image index (0..19)" in capsys.readouterr().err


def test_example_methods_with_commas_in_their_labels(tmp_path, capsys):
    path = _scenario(
        tmp_path,
        methods=["zeros", {"name": "halrtc", "max_iters": 3, "tol": 0.01}],
        data={"dataset": "fmnist-scenes", "n_images": 8},
    )
    out = tmp_path / "ex.png"
    argv = ["example", path, "--methods", "halrtc(max_iters=3,tol=0.01)", "--out", str(out)]
    assert main(argv) == 0
    assert "halrtc(max_iters=3,tol=0.01)" in capsys.readouterr().out
    assert main(["example", path, "--trial", "-1"]) == 2
    assert "--trial: must be >= 0, got -1" in capsys.readouterr().err
