"""The lossy picture codecs (hevc, avif, jpeg-xl, jpeg) and png on the network: rate and
distortion against their knob, what is counted, fragments within the MTU, what a missing
or damaged fragment costs (the tensor, or the image), packet mode, the camera's image at
split ``input``, and one-line errors for settings they cannot take."""

import csv
import math
import textwrap

import numpy as np
import pytest
import torch
from test_scenario import GOOD  # the smallest valid scenario

from dfsim import registry
from dfsim.codecs.base import PacketBytes, PayloadError
from dfsim.codecs.pictures import CODERS, CodedPicture
from dfsim.codecs.tiling import tile
from dfsim.experiment.prepare import configure_codec
from dfsim.experiment.scenario import load_scenario
from dfsim.models import load_model
from dfsim.models.inference import prepare_for_inference, run_batched
from dfsim.transport.packets import PacketLayout

LOSSY = ("hevc", "avif", "jpeg-xl", "jpeg")
# each lossy codec's knob from the finest to the coarsest setting tried
KNOBS = {
    "hevc": ("qp", (22, 32, 42)),
    "avif": ("quality", (80, 50, 20)),
    "jpeg-xl": ("quality", (90, 60, 30)),
    "jpeg": ("quality", (90, 60, 20)),
}


def codec(name, **params):
    return registry.build("codec", name, "encoding", **params)


@pytest.fixture(scope="module")
def feats():
    """Default-model features (fmnist-resnet at its default split, 32x28x28: a 224x112
    tiled picture) of the first four Fashion-MNIST test images."""
    from dfsim.data.datasets import load_fashion_mnist

    model = load_model("fmnist-resnet")
    images = load_fashion_mnist("test").head(4).images
    with torch.no_grad():
        (f,) = model.edge(model.default_split)(model.normalise(images))
    return f.numpy()


def layout_of(x, rows=4):
    return PacketLayout.for_shape(x.shape[1:], rows)


def everything(e):
    return np.ones((e.n_images, e.packets_per_image), bool)


# --------------------------------------------------------------------------- rate, distortion
@pytest.mark.parametrize("name", LOSSY)
def test_rate_falls_and_distortion_rises_along_the_knob(name, feats):
    knob, settings = KNOBS[name]
    lay = layout_of(feats)
    rates, mses = [], []
    for value in settings:
        c = codec(name, **{knob: value})
        e = c.encode(feats, lay)
        values, lost = c.decode(e, everything(e), e.side_info)
        assert not lost.any()
        rates.append(float(e.bits_per_image().mean()))
        mses.append(float(np.mean(np.square(values - feats))))
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == 3, rates
    assert mses == sorted(mses) and len(set(mses)) == 3, mses


@pytest.mark.parametrize("bits", [8, 12])
def test_jpeg_xl_at_quality_100_is_lossless(bits, feats):
    """libjxl's level 100 alone is VarDCT (codes off by one or two): quality 100 is its
    modular lossless mode, bit for bit the quantizer's values."""
    from dfsim.codecs.raw import RawCodec

    lay = layout_of(feats)
    c = codec("jpeg-xl", quality=100, bits=bits)
    assert c.lossless and not codec("jpeg-xl", quality=99, bits=bits).lossless
    e = c.encode(feats, lay)
    values, _ = c.decode(e, everything(e), e.side_info)
    raw = RawCodec(bits)
    r = raw.encode(feats, lay)
    expected, _ = raw.decode(r, np.ones((len(feats), lay.packets_per_tensor), bool), r.side_info)
    np.testing.assert_array_equal(values, expected)


# --------------------------------------------------------------------------- what is counted
@pytest.mark.parametrize("name", ("hevc", "avif"))
def test_the_counted_stream_excludes_the_heif_boxes(name, feats):
    from dfsim.codecs.quantizer import quantize

    coder = CODERS[name]()
    picture = tile(quantize(feats[:1], 8).codes[0])
    assert picture.shape == (112, 224)  # 32 channels of 28 x 28: 4 down, 8 across
    cp = coder.encode(picture, 8, coder.knob_default)
    assert cp.container is not None and cp.container[4:8] == b"ftyp"
    assert len(cp.stream) < len(cp.container)
    assert len(cp.stream) == sum(e - s for s, e in cp.slices)
    assert cp.stream == b"".join(cp.container[s:e] for s, e in cp.slices)
    assert cp.rebuild(cp.stream) == cp.container
    # the counted bytes alone, written back into the boxes, decode as the whole file does
    whole = CodedPicture(cp.container)  # no container: the file is what is received
    np.testing.assert_array_equal(
        coder.decode(cp, cp.stream, 8, picture.shape),
        coder.decode(whole, cp.container, 8, picture.shape),
    )


def test_the_counted_bits_are_the_fragments_plus_side_information(feats):
    c = codec("hevc")
    e = c.encode(feats, layout_of(feats))
    streams = [len(p.stream) for p in e.payloads.coded]
    assert (e.packet_bits().sum(axis=1) == 8 * np.array(streams)).all()
    assert (e.bits_per_image() == e.packet_bits().sum(axis=1) + 64).all()  # min, max


# --------------------------------------------------------------------------- fragments
SMALL_MTU = """\
name: t
data: {n_images: 4}
network: {mtu_bytes: 600, header_bytes: 40}
channels:
  - {kind: iid, loss_rates: [0.0]}
methods: [zeros]
trials: 1
"""


@pytest.mark.parametrize("name", LOSSY + ("png",))
def test_fragments_fit_the_mtu_and_every_image_has_the_same_k(name, feats, tmp_path):
    (tmp_path / "s.yaml").write_text(SMALL_MTU)
    scn = load_scenario(tmp_path / "s.yaml")
    c = configure_codec(scn, codec(name), "add_1")  # one tensor: its own side information
    assert (c.fragment_bytes, c.first_fragment_bytes) == (560, 552)  # side info: 8 bytes
    e = c.encode(feats, layout_of(feats))
    sizes = e.packet_bits() // 8  # N x K: the same K for every image
    assert sizes.shape[0] == len(feats)
    assert sizes.max() <= 560 and sizes[:, 0].max() <= 552
    longest = max(len(p.stream) for p in e.payloads.coded)
    assert sizes.shape[1] == math.ceil(longest / 552) > 1  # the fewest that fit
    assert (sizes.max(axis=1) - sizes.min(axis=1) <= 1).all()  # near-equal


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("name", LOSSY + ("png",))
def test_a_missing_fragment_loses_the_whole_tensor(name, feats):
    c = codec(name)
    c.set_fragments(400, 392)
    e = c.encode(feats, layout_of(feats))
    k = e.packets_per_image
    assert k > 1
    received = everything(e)
    received[1, k // 2] = False
    values, lost = c.decode(e, received, e.side_info)
    assert lost[1].all() and (values[1] == 0).all()
    assert not lost[[0, 2, 3]].any()
    full, _ = c.decode(e, everything(e), e.side_info)
    np.testing.assert_array_equal(values[[0, 2, 3]], full[[0, 2, 3]])
    flags = c.packet_lost(lost, e)  # every fragment of image 1 counts as unusable
    assert flags[1].all() and not flags[[0, 2, 3]].any()
    assert not c.drops_images and codec(name, on_fragment_loss="drop-image").drops_images


def test_a_lost_packet_loses_only_its_rows_in_packet_mode(feats):
    x = feats[:2, :4]  # 4 channels: 28 pictures of 4 rows each per image
    c = codec("jpeg", mode="packet")
    lay = layout_of(x)
    e = c.encode(x, lay)
    assert e.packets_per_image == lay.packets_per_tensor
    received = everything(e)
    received[0, [3, 10]] = False
    values, lost = c.decode(e, received, e.side_info)
    np.testing.assert_array_equal(lost, lay.lost_mask(~received))
    full, _ = c.decode(e, everything(e), e.side_info)
    np.testing.assert_array_equal(values[~lost], full[~lost])
    assert not c.drops_images and not c.whole_tensor


@pytest.mark.parametrize("name", LOSSY + ("png",))
def test_a_truncated_codestream_is_a_payload_error(name, feats):
    from dfsim.codecs.quantizer import quantize

    coder = CODERS[name]()
    picture = tile(quantize(feats[:1], 8).codes[0])
    cp = coder.encode(picture, 8, coder.knob_default)
    for cut in (cp.stream[:-1], cp.stream[: len(cp.stream) // 2], b""):
        with pytest.raises(PayloadError):
            coder.decode(cp, cut, 8, picture.shape)


def with_packets(e, packets: PacketBytes):
    """``e`` with its packets' bytes replaced by ``packets``."""
    import copy

    streams = copy.copy(e.payloads)
    streams.bytes = packets
    return type(e)(**{**e.__dict__, "payloads": streams})


def with_bytes(e, chunks):
    """``e`` with its packets' bytes replaced, each CRC-32 that of the new bytes (what a
    sender would have computed had it sent them)."""
    return with_packets(e, PacketBytes.from_list(chunks))


@pytest.mark.parametrize("name", LOSSY + ("png",))
@pytest.mark.parametrize("how", ["header", "truncated", "garbage"])
def test_a_corrupted_fragment_past_the_crc_loses_the_tensor(name, how, feats):
    """Damage the CRC does not see (recomputed) reaches the decoder: the tensor is lost, no
    exception escapes, the other images are untouched. ``header``: the first bytes of the
    codestream (parameter sets, signature); ``truncated``: a fragment a byte short;
    ``garbage``: random bytes of the fragment's length."""
    c = codec(name)
    c.set_fragments(400, 392)
    e = c.encode(feats, layout_of(feats))
    k = e.packets_per_image
    chunks = [e.payloads.bytes.payload(j) for j in range(len(e.payloads.bytes))]
    j = k  # image 1's first fragment
    if how == "header":
        chunks[j] = bytes([chunks[j][0] ^ 0xFF, chunks[j][1] ^ 0xFF]) + chunks[j][2:]
    elif how == "truncated":
        chunks[j] = chunks[j][:-1]
    else:
        rng = np.random.default_rng(0)
        chunks[j] = rng.integers(0, 256, len(chunks[j]), dtype=np.uint8).tobytes()
    values, lost = c.decode(with_bytes(e, chunks), everything(e), e.side_info)
    assert lost[1].all() and (values[1] == 0).all()
    assert not lost[[0, 2, 3]].any()


def test_a_flipped_byte_inside_the_picture_data_never_raises(feats):
    """HEVC has no checksum of its own: a byte flipped inside the slice data (its CRC-32
    recomputed) may decode to a wrong picture, but one within the quantizer's range, and
    never raises; on the network the CRC-32 the packet was sent with catches it."""
    c = codec("hevc")
    c.set_fragments(400, 392)
    e = c.encode(feats, layout_of(feats))
    k = e.packets_per_image
    chunks = [e.payloads.bytes.payload(j) for j in range(len(e.payloads.bytes))]
    lo, hi = e.side_info["vmin"][1], e.side_info["vmax"][1]
    for j in range(k, 2 * k):  # each of image 1's fragments
        bad = bytearray(chunks[j])
        bad[len(bad) // 2] ^= 0x5A
        damaged = [*chunks[:j], bytes(bad), *chunks[j + 1 :]]
        values, lost = c.decode(with_bytes(e, damaged), everything(e), e.side_info)
        assert not lost[[0, 2, 3]].any()
        got = values[1][~lost[1]]
        assert np.isfinite(got).all() and (got >= lo - 1e-6).all() and (got <= hi + 1e-6).all()
        sent = PacketBytes.from_list(damaged)
        sent.crc = e.payloads.bytes.crc.copy()  # the CRC-32s as sent
        _, lost = c.decode(with_packets(e, sent), everything(e), e.side_info)
        assert lost[1].all() and not lost[[0, 2, 3]].any()


# --------------------------------------------------------------------------- end to end
END_TO_END = """\
name: drops
seed: 1
data: {n_images: 40}
encoding: {codec: hevc, on_fragment_loss: [lose-tensor, drop-image]}
channels:
  - {kind: iid, loss_rates: [0.0, 0.3, 1.0]}
methods: [zeros]
trials: 1
"""


def test_dropped_images_count_as_misses_end_to_end(tmp_path):
    from conftest import run_scenario

    rows = run_scenario(tmp_path, END_TO_END)
    top1 = {(r["on_fragment_loss"], float(r["loss_rate"])): float(r["top1"]) for r in rows}
    assert int(rows[0]["packets_per_image"]) > 1  # the tensor travels in fragments
    assert top1["drop-image", 0.0] == top1["lose-tensor", 0.0] > 0.5  # nothing dropped
    # the same packets are lost in both; a dropped image is a miss, a lost tensor (zeros)
    # still gets the cloud's guess
    assert top1["drop-image", 0.3] <= top1["lose-tensor", 0.3]
    assert top1["drop-image", 1.0] == 0.0 < top1["lose-tensor", 1.0]


CAMERA = """\
name: camera
seed: 2
data: {n_images: 40}
model: {split: input}
encoding: {codec: [png, jpeg], quality: 10}
channels:
  - {kind: iid, loss_rates: [0.0]}
methods: [zeros]
trials: 1
"""


def test_the_camera_image_in_png_keeps_the_full_models_accuracy(tmp_path):
    from conftest import run_scenario

    from dfsim.data.datasets import load_fashion_mnist

    rows = {r["codec"]: r for r in run_scenario(tmp_path, CAMERA)}
    model = load_model("fmnist-resnet")
    data = load_fashion_mnist("test").head(40)
    logits = run_batched(prepare_for_inference(model.full()), model.normalise(data.images))
    full = float(np.mean(np.argmax(logits, axis=1) == data.labels))
    assert float(rows["png"]["top1"]) == full
    assert math.isinf(float(rows["png"]["feature_psnr_db"]))  # lossless
    assert float(rows["png"]["feature_mse"]) == 0.0
    psnr = float(rows["jpeg"]["feature_psnr_db"])
    assert 15 < psnr < 40  # quality 10: visibly lossy, against 255
    assert float(rows["jpeg"]["kbpi"]) < float(rows["png"]["kbpi"])


# --------------------------------------------------------------------------- errors
ERRORS = [
    ("encoding: {codec: hevc, qp: 60}", "encoding.qp: 60 is out of range (must be [0, 51])"),
    (
        "encoding: {codec: jpeg, bits: 12}",
        "bits: jpeg codes 8-bit pictures only, not 12-bit features",
    ),
    (
        "encoding: {codec: avif, bits: 9}",
        "bits: avif codes 8, 10 or 12-bit pictures, not 9-bit features",
    ),
    (
        "model: {split: input}\nencoding: {codec: zstd}",
        "encoding.codec: zstd codes features; split input sends the camera's image: use a "
        "picture codec (hevc, avif, jpeg-xl, jpeg, png)",
    ),
    (
        "model: {split: input}\nencoding: {codec: hevc, bits: 10}",
        "encoding.bits: the camera's images are 8-bit, coded as they are (got bits 10)",
    ),
    (
        "encoding: {codec: hevc, mode: fragments}",
        "encoding.mode: 'fragments' is not one of tensor, packet",
    ),
    (
        "encoding: {codec: jpeg, on_fragment_loss: skip}",
        "encoding.on_fragment_loss: 'skip' is not one of lose-tensor, drop-image",
    ),
    (
        "encoding: {codec: png, quality: 50}",
        "encoding.quality: not a parameter of codec png",
    ),
]


@pytest.mark.parametrize("extra,message", ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_settings_a_picture_codec_cannot_take_are_one_line_errors(
    tmp_path, capsys, extra, message, dry
):
    from dfsim.tools.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(GOOD + textwrap.dedent(extra) + "\n")
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(path),
            "--out",
            str(out),
            "--quiet",
            *(["--dry-run", "--no-estimate"] if dry else []),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"dfsim: error: {path}: ") and message in err, err
    assert not (out / "results.csv").exists()


def test_results_name_the_codec_settings(tmp_path):
    """The grid's knob columns: what a rate-distortion plot reads."""
    from conftest import run_scenario

    text = GOOD.replace("[0.1]", "[0.0]") + "encoding: {codec: jpeg, quality: [30, 90]}\n"
    rows = run_scenario(tmp_path, text)
    by = {int(r["quality"]): r for r in rows}
    assert set(by) == {30, 90}
    assert float(by[30]["kbpi"]) < float(by[90]["kbpi"])
    assert float(by[30]["feature_psnr_db"]) < float(by[90]["feature_psnr_db"])
    with open(tmp_path / "out" / "results.csv") as f:
        header = next(csv.reader(f))
    assert {"quality", "mode", "on_fragment_loss", "feature_psnr_db"} <= set(header)


# --------------------------------------------------------------------------- the benchmark
def test_bench_lossy_tiny_configuration(tmp_path, capsys):
    import json

    from dfsim.tools.bench_codecs import LOSSY_SETTINGS, bench_lossy

    hevc = {**LOSSY_SETTINGS["hevc"], "values": (27, 42)}
    args = type("Args", (), {"out": str(tmp_path), "lossy_images": 1})()
    args.lossy_settings = {"hevc": hevc, "jpeg": {**LOSSY_SETTINGS["jpeg"], "values": (50,)}}
    r = bench_lossy(args)
    assert [(x["codec"], x["value"]) for x in r["rows"]] == [
        ("hevc", 27),
        ("hevc", 27),
        ("hevc", 42),
        ("hevc", 42),
        ("jpeg", 50),
    ]
    fast, medium = r["rows"][:2]
    assert fast["effort"].startswith("preset ultrafast") and medium["effort"].startswith(
        "preset medium"
    )
    assert fast["reference"] and not medium["reference"]
    assert fast["bits_per_tensor"] != medium["bits_per_tensor"]  # the preset reached x265
    assert fast["encode_ms"] > 0 and fast["decode_ms"] > 0 and fast["psnr_db"] > 20
    (s,) = r["summary"]
    assert s["codec"] == "hevc" and s["values"] == [27, 42]
    text = (tmp_path / "lossy-codecs.txt").read_text()
    first = text.splitlines()[0]
    assert first.startswith("# dfsim bench lossy") and r["cpu"] in first and r["date"] in first
    assert "rate at the same PSNR (BD-rate)" in text and text in capsys.readouterr().out
    assert json.loads((tmp_path / "lossy-codecs.json").read_text())["rows"][4]["codec"] == "jpeg"


def test_bench_codecs_leaves_the_lossy_codecs_to_bench_lossy():
    from dfsim.tools.bench_codecs import _lossless_codecs

    assert _lossless_codecs(registry.names("codec")) == [
        n for n in registry.names("codec") if n not in LOSSY
    ]
