"""Hostile or absurd inputs are refused early, in one line, without a traceback: huge grids,
unwritable output directories, keys holding line breaks, deep or exploding YAML, models
and post-processing that return the wrong number of items, and decompression bombs."""

import os
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import brotli
import numpy as np
import pytest
import zstandard
from test_scenario import GOOD  # the smallest valid scenario

from dfsim import limits, registry
from dfsim.codecs.base import PayloadError
from dfsim.errors import one_line
from dfsim.experiment import scenario, yaml_files
from dfsim.experiment.scenario import Component, ModelSpec, load_scenario
from dfsim.registry import build
from dfsim.tools.cli import main

ROWS = "[" + ", ".join(str(r) for r in range(1, 29)) + "]"
BITS = "[" + ", ".join(str(b) for b in range(2, 17)) + "]"
# 2 x 15 x 9 x 28 x 2 x 31 = 468 720 configs
HUGE_GRID = f"""\
encoding: {{codec: [deflate, zstd], bits: {BITS}, level: [1, 2, 3, 4, 5, 6, 7, 8, 9]}}
packets: {{rows_per_packet: {ROWS}, order: [row-major, channel-major]}}
model: {{split: [{", ".join(f"s{i}" for i in range(31))}]}}
"""


def write(tmp_path, text, name="s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def counting(monkeypatch, owner, name: str) -> list:
    """Replace ``owner.name`` by a function that records each call's arguments in the list
    returned, then calls the original."""
    calls: list = []
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def refused(capsys, *argv: str) -> str:
    """Run the CLI: exit 2, exactly one line on stderr, no traceback; that line."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("dfsim: error: ")
    return line


# --------------------------------------------------------------------------- grid size
def test_a_huge_grid_is_counted_and_refused_before_anything_is_built(tmp_path, capsys, monkeypatch):
    scn = write(tmp_path, GOOD + HUGE_GRID)
    configs = counting(monkeypatch, scenario, "_config")
    models = counting(monkeypatch, ModelSpec, "build")
    for options in ([], ["--dry-run", "--no-estimate"]):
        line = refused(capsys, "run", str(scn), "--out", str(tmp_path / "o"), *options)
        assert f"{scn}: the grid (" in line
        assert "makes 468,720 configs, more than the limit of 10,000" in line
        assert line.endswith("raise the limit with --max-configs 468720")
    assert configs == [] and models == []  # refused from the lists' lengths alone
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("n", [300, 5000])
def test_codecs_are_not_crossed_with_parameters_they_do_not_read(tmp_path, monkeypatch, n):
    """zstd reads ``dictionary``, range reads ``max_table_bits``: n values of each make
    n + n configs, and the grid is made from those n + n combinations alone, never from
    the n x n product of the two lists (5 000 + 5 000 is exactly the limit)."""
    dictionary, table_bits = list(range(n)), list(range(64, 64 + n))
    grid = f"encoding: {{codec: [zstd, range], dictionary: {dictionary}, "
    path = write(tmp_path, GOOD + grid + f"max_table_bits: {table_bits}}}\n")
    made = counting(monkeypatch, scenario, "_config")
    configs = load_scenario(path).configs
    assert len(configs) == len(made) == 2 * n <= limits.MAX_CONFIGS
    assert [c.codec.kwargs["dictionary"] for c in configs[:n]] == dictionary
    assert [c.codec.kwargs["max_table_bits"] for c in configs[n:]] == table_bits
    assert {c.codec.name for c in configs[:n]} == {"zstd"}
    assert {c.codec.name for c in configs[n:]} == {"range"}
    with pytest.raises(Exception, match=f"makes {2 * n:,} configs, more than the limit"):
        load_scenario(path, max_configs=2 * n - 1)
    assert len(made) == 2 * n  # refused before any config was made


def test_max_configs_and_max_units_raise_or_lower_the_limits(tmp_path, capsys):
    grid = "encoding: {bits: [4, 6, 8]}\npackets: {rows_per_packet: [1, 2, 4, 7]}\n"
    scn = write(tmp_path, GOOD + grid)  # 12 configs, 12 units
    line = refused(capsys, "run", str(scn), "--max-configs", "11", "--dry-run")
    assert "makes 12 configs, more than the limit of 11" in line
    line = refused(capsys, "run", str(scn), "--max-units", "11", "--dry-run")
    assert (
        "12 work units (12 configs x 1 channel settings x 1 trials), more than the limit of 11"
        in line
    )
    assert line.endswith("--max-units 12")
    out = tmp_path / "o"
    assert (
        main(
            [
                "run",
                str(scn),
                "--max-configs",
                "12",
                "--out",
                str(out),
                "--dry-run",
                "--no-estimate",
            ]
        )
        == 0
    )
    assert "12 configs x 1 settings x 1 trials = 12 work units" in capsys.readouterr().out
    assert refused(capsys, "run", str(scn), "--max-units", "0") == (
        "dfsim: error: --max-units: must be >= 1, got 0"
    )


def test_work_units_are_counted_before_any_channel_is_made(tmp_path, capsys):
    rates = "[" + ", ".join(f"0.{i:03d}" for i in range(1, 1000)) + "]"
    text = GOOD.replace("[0.1]", rates).replace("trials: 1", "trials: 2000")
    line = refused(capsys, "run", str(write(tmp_path, text)), "--dry-run")
    assert "1,998,000 work units (1 configs x 999 channel settings x 2,000 trials)" in line
    assert "more than the limit of 1,000,000" in line


def test_method_variants_are_counted_before_they_are_made(tmp_path, capsys):
    iters = "[" + ", ".join(str(i) for i in range(1, 101)) + "]"
    tols = "[" + ", ".join(f"0.{i:03d}" for i in range(1, 21)) + "]"
    text = GOOD.replace("[zeros]", f"[zeros, {{name: halrtc, max_iters: {iters}, tol: {tols}}}]")
    line = refused(capsys, "run", str(write(tmp_path, text)), "--dry-run")
    assert "methods: 2,001 methods with their variants, more than the limit of 1,000" in line


@pytest.mark.parametrize(
    "grid",
    [
        "encoding: {codec: [raw, deflate, zstd], bits: [4, 8], level: [1, 5, 9]}",
        "encoding: {codec: [raw, brotli], quality: [1, 5], bits: [4, 8]}\n"
        "packets: {rows_per_packet: [2, 4]}\n"
        "zip: [[encoding.quality, packets.rows_per_packet]]",
        "encoding: {codec: [lz4, zstd, raw], level: [3, 19]}\n"
        "zip: [[encoding.codec, packets.rows_per_packet]]\n"
        "packets: {rows_per_packet: [1, 2, 4], order: [row-major, channel-major]}",
    ],
)
def test_the_config_count_is_exact_for_codecs_without_a_listed_parameter(tmp_path, grid):
    path = write(tmp_path, GOOD + grid + "\n")
    n = len(load_scenario(path).configs)
    assert len(load_scenario(path, max_configs=n).configs) == n
    with pytest.raises(Exception, match=f"makes {n} configs, more than the limit of {n - 1}"):
        load_scenario(path, max_configs=n - 1)


def test_dry_run_builds_the_model_once_per_split_not_per_config(tmp_path, capsys, monkeypatch):
    # 5 codecs x 15 bit depths x 14 packet sizes x 2 orders x 2 error controls = 4 200 configs
    grid = (
        f"encoding: {{codec: [raw, deflate, zstd, brotli, lz4], bits: {BITS}}}\n"
        "packets: {rows_per_packet: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], "
        "order: [row-major, channel-major]}\nerror_control: [none, arq]\n"
    )
    scn = write(tmp_path, GOOD + grid)
    builds = []
    real = ModelSpec.build
    monkeypatch.setattr(
        ModelSpec, "build", lambda self, split=None: builds.append(split) or real(self, split)
    )
    made = counting(monkeypatch, scenario, "_config")
    assert main(["run", str(scn), "--out", str(tmp_path / "o"), "--dry-run", "--no-estimate"]) == 0
    out = capsys.readouterr().out
    assert "4200 configs x 1 settings x 1 trials = 4200 work units" in out
    assert builds == [None]
    assert len(made) == 4200  # each config made once


# --------------------------------------------------------------------------- --out
def _unwritable(tmp_path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d / "out"
    if not Path("/sys").is_dir():
        pytest.skip("no directory that root cannot write to")
    return Path("/sys/dfsim-test-out/out")  # root may write anywhere but in /sys


@pytest.mark.parametrize("where", ["below a file", "a file", "unwritable"])
def test_an_output_directory_that_cannot_be_written_is_refused_before_any_work(
    tmp_path, capsys, monkeypatch, where
):
    scn = write(tmp_path, GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = {
        "below a file": blocker / "sub" / "out",
        "a file": blocker,
        "unwritable": _unwritable(tmp_path),
    }[where]
    models = counting(monkeypatch, ModelSpec, "build")
    components = counting(monkeypatch, Component, "build")  # the dataset, among others
    for dry in ([], ["--dry-run", "--no-estimate"]):
        line = refused(capsys, "run", str(scn), "--out", str(out), "--quiet", *dry)
        assert line.startswith(f"dfsim: error: --out: {str(out)!r} ")
    assert models == [] and components == []  # refused before the model and the data
    assert blocker.read_text() == "x"


def test_the_output_check_leaves_nothing_behind(tmp_path, capsys):
    scn = write(tmp_path, GOOD)
    out = tmp_path / "a" / "b" / "out"
    assert main(["run", str(scn), "--out", str(out), "--dry-run", "--no-estimate"]) == 0
    assert list(tmp_path.iterdir()) == [tmp_path / "s.yaml"]


# --------------------------------------------------------------------------- one line
@pytest.mark.parametrize(
    "text,shown",
    [
        ('"colour\\nred": 1\n', r"'colour\nred': unknown key"),
        ('"\\e[31mred": 1\n', r"'\x1b[31mred': unknown key"),
        ('encoding: {"bits\\r\\nx": 4}\n', r"encoding.'bits\r\nx': unknown key"),
        ('fit_dir: "a\\nb"\n', r"fit_dir: unknown key"),
        ('zip: [["x\\ny", 1]]\n', r"zip[0]: 'x\ny' is not a grid key"),
        ("42: x\n", "42: unknown key"),
    ],
)
def test_a_key_or_value_with_line_breaks_is_shown_on_one_line(tmp_path, capsys, text, shown):
    line = refused(capsys, "run", str(write(tmp_path, GOOD + text)), "--dry-run")
    assert shown in line


def test_a_value_with_a_line_break_is_shown_on_one_line(tmp_path, capsys):
    text = GOOD.replace("{n_images: 20}", '{dataset: folder, dir: "a\\nb\\u2028c"}')
    line = refused(capsys, "run", str(write(tmp_path, text)), "--dry-run")
    assert r"data.dir: dir 'a\nb\u2028c' not found" in line


def test_the_cli_escapes_any_message_it_prints(capsys, monkeypatch):
    from dfsim.errors import UserError
    from dfsim.tools import cli

    def boom(args):
        raise UserError("first\nsecond\r\x1b[2Kthird\u2029")

    monkeypatch.setattr(cli, "cmd_compare", boom)
    line = refused(capsys, "compare", "x")
    assert line == r"dfsim: error: first\nsecond\r\x1b[2Kthird\u2029"
    assert one_line("plain é ü") == "plain é ü"


def test_a_huge_value_is_cut_short_in_the_message(tmp_path, capsys):
    text = GOOD.replace("trials: 1", "trials: [" + ", ".join(["1"] * 100_000) + "]")
    line = refused(capsys, "run", str(write(tmp_path, text)), "--dry-run")
    assert "trials: expected an integer, got list [1, 1, 1, 1, 1, 1, ...]" in line
    assert len(line) < 300


BIG = "x" * 300_000


@pytest.mark.parametrize(
    "text,start,end",
    [
        (f"model: {{split: [{BIG}, {BIG}]}}\n", "model.split: 'xxxxx", "xxx' is listed twice"),
        (
            f"error_control: [{{name: none, label: {BIG}}}, {{name: arq, label: {BIG}}}]\n",
            "error_control: ['xxxxx",
            "xxx']: strategies need distinct labels (set 'label')",
        ),
        (
            f"methods: [{{name: zeros, label: {BIG}}}, {{name: linear, label: {BIG}}}]\n",
            "methods: 'xxxxx",
            "xxx' listed twice (give each a distinct 'label')",
        ),
    ],
    ids=["grid list", "error control labels", "method labels"],
)
def test_a_huge_value_listed_twice_is_cut_short_in_the_message(tmp_path, capsys, text, start, end):
    scn = write(
        tmp_path,
        GOOD.replace("methods: [zeros]\n", "methods: [zeros]\n" * ("methods" not in text)) + text,
    )
    line = refused(capsys, "run", str(scn), "--dry-run")
    assert line.startswith(f"dfsim: error: {scn}: {start}")
    assert line.endswith(end)
    assert "xxx...xxx" in line and len(line) < len(str(scn)) + 250


# --------------------------------------------------------------------------- YAML bounds
@pytest.mark.parametrize(
    "text,message",
    [
        ("channels: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 64 levels deep"),
        ("a: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "nested more than 64 levels deep"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            )
            + "channels: *i\n",
            "more than 1,000,000 nodes once its aliases are expanded",
        ),
        ("a: &a [1, *a]\n", "an alias refers to a node that contains it"),
        ("a: &a {b: *a}\n", "an alias refers to a node that contains it"),
        ("channels: [" + "0.1, " * 400_000 + "0.1]\n", "larger than 1024 KiB (2,000,016 bytes)"),
        # two-byte characters from byte 2 on: the first 1 MiB + 1 bytes end inside one
        ("# " + "\u00e9" * 600_000 + "\n", "larger than 1024 KiB (1,200,003 bytes)"),
    ],
    ids=[
        "deep list",
        "deep mapping",
        "billion laughs",
        "recursive list",
        "recursive map",
        "big",
        "big, cut inside a character",
    ],
)
def test_yaml_bombs_are_refused_before_they_are_expanded_naming_the_file(
    tmp_path, capsys, monkeypatch, text, message
):
    """Each bomb is refused before any Python object is made from the document: from its
    size before parsing, its depth while composing, its node count (aliases expanded) or
    an alias inside its own node on the composed graph, where aliases share nodes."""
    scn = tmp_path / "s.yaml"
    scn.write_text(text, encoding="utf-8")
    composed = counting(monkeypatch, yaml_files._UniqueKeyLoader, "get_single_node")
    constructed = counting(monkeypatch, yaml_files._UniqueKeyLoader, "construct_document")
    line = refused(capsys, "run", str(scn), "--dry-run")
    assert line.startswith(f"dfsim: error: {scn}: ")
    assert message in line
    assert constructed == []
    assert len(composed) == (0 if message.startswith("larger than") else 1)


def test_a_results_manifest_nested_too_deep_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "results.csv").write_text("method\n")
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    line = refused(capsys, "plot", str(tmp_path))
    assert f"{tmp_path / 'manifest.json'}: not a dfsim manifest" in line


def test_limits_are_named_constants():
    assert limits.MAX_CONFIGS == 10_000 and limits.MAX_UNITS == 1_000_000
    assert limits.MAX_SCENARIO_BYTES == 1 << 20 and limits.MAX_YAML_DEPTH == 64


# --------------------------------------------------------------------------- models
def test_a_model_returning_fewer_rows_than_images_is_named(tmp_path, capsys):
    import cv2

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(6):
        cv2.imwrite(
            str(tmp_path / "imgs" / f"{i}.png"), rng.integers(0, 255, (16, 16, 3), np.uint8)
        )
    scn = write(
        tmp_path,
        f"""\
        model: {{import: "byo_model:make_first_row_only", input_size: [3, 16, 16]}}
        data: {{dataset: folder, dir: {tmp_path / "imgs"}, labels: none, n_images: 6}}
        packets: {{rows_per_packet: 2}}
        channels: [{{kind: iid, loss_rates: [0.1]}}]
        methods: [zeros]
        trials: 1
        """,
    )
    line = refused(capsys, "run", str(scn), "--out", str(tmp_path / "o"), "--quiet")
    assert "model 'byo_model:make_first_row_only': the full model returned 1x6 for 6 images" in line
    assert line.endswith("expected one row per image")
    assert not (tmp_path / "o" / "results.csv").exists()


def test_edge_outputs_of_the_wrong_shape_are_named():
    from dfsim.errors import UserError
    from dfsim.experiment.prepare import check_crossing, check_rows, task_predict
    from dfsim.stages import Crossing

    crossing = [Crossing("a", (4, 7, 7)), Crossing("b", (8, 7, 7))]
    good = (np.zeros((3, 4, 7, 7)), np.zeros((3, 8, 7, 7)))
    check_crossing(good, crossing, 3, "edge")
    with pytest.raises(UserError, match=r"^edge returned 1 tensors \(3x4x7x7\), expected 2 "):
        check_crossing(good[:1], crossing, 3, "edge")
    with pytest.raises(UserError, match=r"returned 2 tensors \(3x4x7x7, 2x8x7x7\)"):
        check_crossing((good[0], good[1][:2]), crossing, 3, "edge")
    with pytest.raises(UserError, match=r"^cloud returned 2x10 for 3 images"):
        check_rows(np.zeros((2, 10)), 3, "cloud")

    class Task:
        name = "mine"

        def predict(self, outputs):
            return outputs.argmax(axis=1)[:-1]

    with pytest.raises(UserError, match=r"^task 'mine': predict returned 2 for 3 images"):
        task_predict(Task(), np.zeros((3, 10)), 3)


def test_a_completion_method_returning_the_wrong_shape_is_named(tmp_path, capsys):
    (tmp_path / "half.py").write_text(
        textwrap.dedent(
            """\
            from dfsim.completion.base import CompletionMethod
            from dfsim.registry import register

            @register("completion", "half-test")
            class Half(CompletionMethod):
                def complete_batch(self, tensors, lost, layout=None):
                    return tensors[:, : tensors.shape[1] // 2]
            """
        )
    )
    text = GOOD.replace("[zeros]", "[zeros, half-test]").replace("[0.1]", "[0.5]")
    scn = write(tmp_path, text + f"plugins: [{tmp_path / 'half.py'}]\n")
    try:
        line = refused(
            capsys, "run", str(scn), "--out", str(tmp_path / "o"), "--quiet", "--workers", "1"
        )
    finally:  # the plug-in's method must not outlive the test (precompile runs every one)
        registry.unregister("completion", "half-test")
    assert (
        "methods (half-test): complete_batch returned 20x16x28x28 for a 20x32x28x28 batch" in line
    )


# --------------------------------------------------------------------------- payloads
def _zstd_bomb(declare_size: bool) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(
        3, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=int(declare_size)
    )
    return zstandard.ZstdCompressor(compression_params=params).compress(bytes(256 << 20))


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """Payloads of a few hundred bytes to 8 KiB that inflate to 256 MiB of zeros."""
    d = zlib.compressobj(9, zlib.DEFLATED, -15)
    return {
        "zstd (size declared)": _zstd_bomb(True),
        "zstd": _zstd_bomb(False),
        "brotli": brotli.compress(bytes(256 << 20), quality=5),
        "deflate": d.compress(bytes(256 << 20)) + d.flush(),
    }


@pytest.mark.parametrize("which", ["zstd (size declared)", "zstd", "brotli", "deflate"])
def test_a_decompression_bomb_is_a_bad_packet_not_a_256_mib_allocation(bombs, which):
    payload = bombs[which]
    assert len(payload) < 300_000
    codec = build("codec", which.split()[0])
    tracemalloc.start()  # it sees the decompressors' output buffers too
    try:
        for _ in range(10):
            with pytest.raises(PayloadError):
                codec.decode_packet(payload, 4, 28, {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the packet holds 112 bytes: at most a copy of the payload, never the 256 MiB
    assert peak < len(payload) + (1 << 20)


def test_a_zstd_frame_with_a_huge_window_is_refused_before_decoding():
    params = zstandard.ZstdCompressionParameters(
        window_log=27, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=0
    )
    c = zstandard.ZstdCompressor(compression_params=params)
    with c.stream_writer(out := _Sink(), closefd=False) as w:  # streaming: the window stays
        w.write(bytes(112))
    with pytest.raises(PayloadError, match="window is larger than a 112-byte packet needs"):
        build("codec", "zstd").decode_packet(bytes(out), 4, 28, {})


class _Sink(bytearray):
    def write(self, data):
        self.extend(data)
        return len(data)


@pytest.mark.parametrize("name", ["deflate", "zstd", "brotli", "lz4", "range", "palette"])
def test_an_oversize_payload_is_an_undecodable_packet_for_every_codec(name):
    codec = build("codec", name)
    rng = np.random.default_rng(0)
    feats = rng.random((2, 3, 8, 8)).astype(np.float32)
    from dfsim.transport.packets import PacketLayout

    layout = PacketLayout.for_shape((3, 8, 8), 4)
    enc = codec.encode(feats, layout)
    payloads, hdr, _ = enc.payloads
    from dfsim.codecs.base import PacketBytes

    chunks = [payloads.payload(j) for j in range(len(payloads))]
    chunks[0] = rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()  # 1 MiB of noise
    bogus = PacketBytes.from_list(chunks)
    side = {k: v for k, v in enc.side_info.items() if k not in ("vmin", "vmax")}
    which = np.arange(len(chunks))
    tracemalloc.start()
    try:
        _, ok = codec.decode_packets(
            bogus, which, hdr["nrows"].astype(np.int64), 8, hdr["image"].astype(np.int64), side
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not ok[0] and ok[1:].all()
    # a 4x8-code packet: what decoding allocates is bounded by a few copies of the payload
    assert peak < 4 * len(chunks[0])
