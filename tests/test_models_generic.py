"""Any PyTorch model: fx split (edge then cloud = full, skip connections crossing the cut),
hook fallback, import-path loading with weights, describe, EfficientNet-Lite0, image folders."""

import byo_model  # noqa: E402  (tests/ is on sys.path)
import numpy as np
import pytest
import torch

from dfsim.errors import UserError
from dfsim.models.generic import GraphSplitModel
from dfsim.models.sources import from_import_path
from dfsim.tools.cli import main


def _compose(m, split, x):
    with torch.no_grad():
        f = m.edge(split)(x)
        assert isinstance(f, tuple)
        return m.cloud(split)(*f), f


def test_edge_then_cloud_equals_the_full_model_at_every_split_point():
    m = GraphSplitModel("skip", byo_model.make(), (3, 16, 16))
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        full = m.full()(x)
    for split in m.split_points:
        y, _ = _compose(m, split, x)
        assert torch.allclose(y, full, atol=1e-5), split


def test_a_cut_across_the_skip_connection_transmits_both_tensors():
    m = GraphSplitModel("skip", byo_model.make(), (3, 16, 16))
    assert [t.name for t in m.crossing("c2")] == ["relu", "c2"]  # a (skip) and b both cross
    assert [t.name for t in m.crossing("add")] == ["add"]
    _, f = _compose(m, "c2", torch.randn(2, 3, 16, 16))
    assert isinstance(f, tuple) and [t.shape[1:] for t in f] == [(8, 16, 16), (8, 16, 16)]
    row = next(r for r in m.describe() if r["split"] == "c2")
    assert row["tensors"] == 2 and row["values"] == 2 * 8 * 16 * 16 and 0 < row["edge_share"] < 1


def test_hook_fallback_for_models_fx_cannot_trace():
    m = GraphSplitModel("untraceable", byo_model.make_untraceable(), (3, 16, 16))
    assert not m.traced and "c2" in m.split_points
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        full = m.full()(x)
    y, f = _compose(m, "c2", x)
    assert f[0].shape == (3, 8, 16, 16) and torch.allclose(y, full, atol=1e-5)


def test_import_path_with_a_saved_state_dict(tmp_path):
    net = byo_model.make()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    m = from_import_path("byo_model:make", str(tmp_path / "w.pt"), (3, 16, 16), (0.5,), (0.25,))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m.full()(x), net.eval()(x))  # the file's weights, not the factory's
    assert m.num_classes == 6 and m.weights_id != "import:byo_model:make"
    assert torch.allclose(m.normalise(np.full((1, 3, 2, 2), 255, np.uint8)), torch.tensor(2.0))


@pytest.mark.parametrize(
    "spec,weights,message",
    [
        (
            "no_such_module:make",
            None,
            "model.import: cannot import 'no_such_module' (ModuleNotFoundError",
        ),
        ("byo_model:nothing", None, "model.import: 'byo_model' has no attribute 'nothing'"),
        ("byo_model", None, "must look like 'package.module:factory'"),
        ("byo_model:make", "missing.pt", "model.weights: file 'missing.pt' not found"),
    ],
)
def test_import_errors_are_one_line(spec, weights, message):
    with pytest.raises(UserError) as info:
        from_import_path(spec, weights, (3, 16, 16), (0.0,), (1.0,))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_mismatched_state_dict_is_named(tmp_path):
    torch.save({"c1.weight": torch.zeros(8, 3, 5, 5), "extra": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(UserError) as info:
        from_import_path("byo_model:make", str(tmp_path / "bad.pt"), (3, 16, 16), (0.0,), (1.0,))
    text = str(info.value)
    assert (
        "does not match the model" in text
        and "missing" in text
        and "1 unexpected (e.g. 'extra')" in text
    )
    assert "1 wrong shape (e.g. 'c1.weight')" in text


def test_describe_the_default_model(capsys):
    assert main(["models", "describe", "fmnist-resnet"]) == 0
    out = capsys.readouterr().out
    assert "add_1" in out and "32x28x28" in out and "25088" in out and "edge share" in out


def test_own_model_runs_through_a_scenario_on_an_image_folder(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(
                str(tmp_path / "imgs" / cls / f"{i}.png"),
                rng.integers(0, 255, (20, 24, 3), dtype=np.uint8),
            )
    torch.save(byo_model.make().state_dict(), tmp_path / "w.pt")
    (tmp_path / "s.yaml").write_text(f"""
model: {{import: "byo_model:make", weights: {tmp_path / "w.pt"}, input_size: [3, 16, 16],
        mean: [0.5], std: [0.25],
        split: add}}
data: {{dataset: folder, dir: {tmp_path / "imgs"}, n_images: 12}}
packets: {{rows_per_packet: 2}}
channels: [{{kind: iid, loss_rates: [0.0, 0.3]}}]
methods: [zeros, linear]
trials: 2
""")
    assert (
        main(
            [
                "run",
                str(tmp_path / "s.yaml"),
                "--out",
                str(tmp_path / "o"),
                "--quiet",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    from dfsim.experiment.results import read_results_csv

    rows = read_results_csv(tmp_path / "o" / "results.csv")
    assert {r["split"] for r in rows} == {"add"} and len(rows) == 2 * 2 * 2
    assert all(0 <= r["top1"] <= 1 for r in rows)  # labels from the folder names
    # across the skip connection: both tensors are sent, each with its own quantizer and packets
    (tmp_path / "s2.yaml").write_text(
        (tmp_path / "s.yaml").read_text().replace("split: add", "split: c2")
    )
    assert (
        main(
            [
                "run",
                str(tmp_path / "s2.yaml"),
                "--out",
                str(tmp_path / "o2"),
                "--quiet",
                "--workers",
                "1",
                "--save-losses",
            ]
        )
        == 0
    )
    two = read_results_csv(tmp_path / "o2" / "results.csv")
    assert {r["packets_per_image"] for r in two} == {
        2 * 8 * 8
    }  # two 8x16x16 tensors, 2-row packets
    lossless = [r for r in two if r["loss_rate"] == 0.0]
    assert all(r["agreement"] == 1.0 for r in lossless)
    lossy = [r for r in two if r["loss_rate"] == 0.3]
    assert all(r["mse_lost"] > 0 and r["realised_loss_rate"] > 0.1 for r in lossy)


def test_unlabelled_folder_reports_agreement_only(tmp_path):
    import cv2

    from dfsim.data.datasets import load_image_folder

    (tmp_path / "flat").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "flat" / f"{i}.jpg"), np.full((40, 30, 3), 60 * i, np.uint8))
    s = load_image_folder(tmp_path / "flat", (1, 8, 8), labels="none")
    assert s.images.shape == (3, 1, 8, 8) and (s.labels == -1).all()
    (tmp_path / "map.csv").write_text("file,label\n0.jpg,5\n1.jpg,7\n2.jpg,5\n")
    assert load_image_folder(
        tmp_path / "flat", (3, 8, 8), labels=str(tmp_path / "map.csv")
    ).labels.tolist() == [5, 7, 5]


efficientnet = pytest.importorskip(
    "efficientnet_lite_pytorch", reason="the imagenet extra is not installed"
)


def test_efficientnet_lite0_classifies_the_bundled_cat_photo_as_a_cat():
    from dfsim.data.datasets import prepare_image, read_image, sample_photo_dir
    from dfsim.models import load_model

    m = load_model("efficientnet-lite0")
    img = prepare_image(read_image(sample_photo_dir() / "chelsea.png"), m.input_shape)[None]
    with torch.no_grad():
        top = int(m.full()(m.normalise(img)).argmax())
    assert 281 <= top <= 285  # ImageNet's domestic cats: tabby, tiger, Persian, Siamese, Egyptian
    assert m.crossing("_blocks.4")[0].shape == (40, 28, 28)
    assert m.crossing("_blocks.7")[0].shape == (80, 14, 14)
    x = torch.from_numpy(
        np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    )
    with torch.no_grad():
        y, _ = _compose(m, "_blocks.4", x)
        assert torch.allclose(y, m.full()(x), atol=1e-5)


def test_a_classifier_called_twice_keeps_its_first_call_as_a_split_point():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(self.c(x).mean(dim=(2, 3))))

    m = GraphSplitModel("twice", Twice(), (3, 8, 8))
    assert "fc" in m.split_points and "fc_1" not in m.split_points


def test_a_users_module_that_fails_is_one_line_and_dfsims_own_keep_their_traceback():
    """A model given by import path that raises is the user's to fix (one line naming it);
    the same failure in layers of torch's or dfsim's own is a bug and keeps its traceback."""
    from torch import nn

    from dfsim.errors import UserError
    from dfsim.experiment.prepare import run_model

    class Broken(nn.Module):  # defined here, outside dfsim and torch: the user's
        def forward(self, x):
            raise ValueError("shapes do not match\nsecond line")

    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(UserError) as err:
        run_model(Broken(), x, 2, "the cloud sub-model")
    assert str(err.value) == "the cloud sub-model failed (ValueError: shapes do not match)"
    torch_only = nn.Sequential(nn.Conv2d(5, 1, 1))  # wrong input for torch's own layer
    with pytest.raises(RuntimeError):  # dfsim's own model: a bug, not a UserError
        run_model(torch_only, x, 2, "the cloud sub-model")
    with pytest.raises(UserError, match="^the edge sub-model failed \\(RuntimeError: "):
        run_model(torch_only, x, 2, "the edge sub-model", users=True)  # from an import path
