"""The split point ``input`` (cloud-only): the camera's image crosses, the cloud runs the
whole model; BD-rate against a cloud-only curve named by several fields; images dropped
under ``on_fragment_loss: drop-image`` are misses."""

import csv

import numpy as np
import pytest

from dfsim.errors import UserError
from dfsim.experiment.trial import no_answer
from dfsim.models import load_model
from dfsim.models.cloud_only import cloud_only
from dfsim.models.inference import prepare_for_inference, run_batched
from dfsim.tasks.classification import Classification
from dfsim.tasks.detection import Detection
from dfsim.tools.cli import main

SCENARIO = """
name: cloud-only-test
seed: 3
model: {{name: fmnist-resnet, split: [input, add_2]}}
data: {{n_images: 60}}
encoding: {{codec: {codec}, qp: [27, 37, 47]}}
channels:
  - {{kind: iid, loss_rates: [0.0]}}
methods: [zeros]
trials: 1
output: {out}
"""


def test_input_is_a_split_point_whose_cloud_is_the_whole_model():
    model = load_model("fmnist-resnet")
    cut = cloud_only(model)
    assert cut.split_points[0] == "input" and cut.split_points[1:] == model.split_points
    assert [(t.name, t.shape) for t in cut.crossing("input")] == [("input", (1, 28, 28))]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    crossing = run_batched(prepare_for_inference(cut.edge("input")), cut.normalise(images))
    assert np.array_equal(crossing, images.astype(np.float32))  # the camera's image, as it is
    direct = run_batched(prepare_for_inference(model.full()), model.normalise(images))
    via_cloud = run_batched(prepare_for_inference(cut.cloud("input")), crossing)
    np.testing.assert_allclose(via_cloud, direct, rtol=1e-5, atol=1e-5)


def test_unknown_split_names_input_among_the_choices():
    with pytest.raises(UserError, match="available: input, the cloud-only baseline; stem"):
        load_model("fmnist-resnet").crossing("nowhere")


def test_bd_rate_against_the_cloud_only_curve(tmp_path, capsys):
    out = tmp_path / "out"
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(codec="hevc", out=out))
    assert main(["run", "--quiet", "--workers", "1", str(path)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    by = {(r["split"], int(r["qp"])): r for r in rows}
    assert set(by) == {(s, q) for s in ("input", "add_2") for q in (27, 37, 47)}
    for s in ("input", "add_2"):  # rate and fidelity fall as the QP rises
        kbpi = [float(by[s, q]["kbpi"]) for q in (27, 37, 47)]
        psnr = [float(by[s, q]["feature_psnr_db"]) for q in (27, 37, 47)]
        assert kbpi == sorted(kbpi, reverse=True) and psnr == sorted(psnr, reverse=True)
    # the 28x28 image is far smaller than 64x14x14 features at every QP
    assert all(float(by["input", q]["kbpi"]) < float(by["add_2", q]["kbpi"]) for q in (27, 37))
    assert all(by["input", q]["packets_per_image"] == "1" for q in (27, 37, 47))
    # without labels: how often the coded split model still says what the full model says
    agree = {k: float(r["coding_agreement"]) for k, r in by.items()}
    assert all(0 <= a <= 1 for a in agree.values()) and agree["input", 47] < 1
    assert agree["input", 27] >= agree["input", 47] and agree["add_2", 27] >= agree["add_2", 47]
    capsys.readouterr()
    args = ["compare", str(out), "--bd-rate", "--curves", "split,codec", "--anchor", "input/hevc"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "against split,codec input/hevc" in table and "add_2/hevc" in table
    assert main([*args[:-1], "input/jpeg"]) != 0
    assert "--anchor: 'input/jpeg' is not a split,codec" in capsys.readouterr().err
    # several directories drawn together need a place for the figure
    assert main(["plot", str(out), str(out), "--x", "kbpi", "--by", "split"]) == 2
    assert "--out: several directories" in capsys.readouterr().err
    both = tmp_path / "both"
    assert (
        main(["plot", str(out), str(out), "--x", "kbpi", "--by", "split", "--out", str(both)]) == 0
    )
    assert (both / "top1_vs_kbpi.png").stat().st_size > 0
    assert main(["plot", str(out), "--x", "kbpi", "--methods", "linear"]) == 2
    assert "--methods: 'linear' is not a method of these results (zeros)" in capsys.readouterr().err


def test_a_feature_codec_at_input_is_refused(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(
        SCENARIO.format(codec="zstd", out=tmp_path / "o").replace(", qp: [27, 37, 47]", "")
    )
    assert main(["run", "--quiet", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "encoding.codec: zstd codes features" in err[0]
    assert "png" in err[0] and "hevc" in err[0]


def test_dropped_images_are_misses():
    dropped = np.array([False, True, False])
    labels = no_answer(Classification(), np.array([3, 4, 5]), dropped)
    assert labels.tolist() == [3, -1, 5]
    dets = np.zeros((3, 2, 6), np.float32)
    dets[:, :, 4], dets[:, :, 5] = 0.9, 1
    out = no_answer(Detection(), dets, dropped)
    assert (out[1, :, 5] == -1).all() and (out[[0, 2], :, 5] == 1).all()
    assert (dets[1, :, 5] == 1).all()  # the predictions given are left alone


def test_picture_codings_are_cached_and_a_damaged_entry_is_recomputed(tmp_path, monkeypatch):
    from dfsim.experiment.prepare import decode_all
    from dfsim.registry import entry
    from dfsim.transport.packets import PacketLayout

    monkeypatch.setenv("DFSIM_CACHE", str(tmp_path / "cache"))
    feats = np.random.default_rng(1).normal(size=(3, 8, 12, 12)).astype(np.float32)
    layout = PacketLayout.for_shape(feats.shape[1:], 4)
    codec = entry("codec", "jpeg-xl").build("encoding", quality=60)
    first = codec.encode(feats, layout)
    (stored,) = (tmp_path / "cache" / "pictures").iterdir()
    again = codec.encode(feats, layout)  # from the cache: the same bytes and values
    assert np.array_equal(again.payloads.bytes.data, first.payloads.bytes.data)
    assert np.array_equal(decode_all(codec, again), decode_all(codec, first))
    assert again.encode_s == first.encode_s  # the time the coding took when it was done
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    redone = codec.encode(feats, layout)
    assert np.array_equal(decode_all(codec, redone), decode_all(codec, first))
    assert stored.is_file()  # stored again, sealed


def test_drop_image_in_packet_mode_is_refused():
    from dfsim.registry import entry

    with pytest.raises(UserError, match="on_fragment_loss: drop-image applies to mode tensor"):
        entry("codec", "hevc").build("encoding", mode="packet", on_fragment_loss="drop-image")


FRAGMENTS = """
name: fragments-test
seed: 5
model: {name: fmnist-resnet, split: add_2}
data: {n_images: 60}
encoding: {codec: hevc, qp: 27}
error_control: [{name: none}, {fec: {k: 8, m: 4}}, {arq: {max_retries: 3}}]
network: {deadline_ms: 200}
channels:
  - {kind: iid, loss_rates: [0.2]}
methods: [zeros]
trials: 1
output: OUT
"""


def test_fec_and_arq_recover_fragments_of_a_whole_tensor_codestream(tmp_path):
    out = tmp_path / "out"
    path = tmp_path / "s.yaml"
    path.write_text(FRAGMENTS.replace("OUT", str(out)))
    assert main(["run", "--quiet", "--workers", "1", str(path)]) == 0
    rows = {r["error_control"]: r for r in csv.DictReader(open(out / "results.csv"))}
    k = int(rows["none"]["packets_per_image"])
    assert k > 2  # the codestream of a 64x14x14 tensor at QP 27 takes several fragments
    lost = {ec: float(r["realised_loss_rate"]) for ec, r in rows.items()}
    top1 = {ec: float(r["top1"]) for ec, r in rows.items()}
    # without recovery an image survives only if all k fragments arrive: (1 - 0.2)^k
    assert lost["none"] > 0.1 and top1["none"] < top1["fec(8,4)"] and top1["none"] < top1["arq(3)"]
    assert lost["fec(8,4)"] < lost["none"] / 2 and lost["arq(3)"] < lost["none"] / 2
    assert float(rows["fec(8,4)"]["wire_bits_per_image"]) > float(
        rows["none"]["wire_bits_per_image"]
    )
