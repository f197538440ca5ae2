"""Malformed scenarios: one line naming the key or file, exit 2, no traceback, no results."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dfsim import devices
from dfsim.experiment.scenario import load_scenario
from dfsim.tools.cli import main

GOOD = """\
name: t
data: {n_images: 20}
channels:
  - {kind: iid, loss_rates: [0.1]}
methods: [zeros]
trials: 1
"""


def write(tmp_path, text, name="s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


CASES = [
    ("name: [unclosed", "invalid YAML (line 1"),
    (GOOD + "colour: red\n", "colour: unknown key (allowed here:"),
    (GOOD.replace("trials: 1", "trials: five"), "trials: expected an integer, got string 'five'"),
    (GOOD.replace("trials: 1", "trials: 0"), "trials: 0 is out of range"),
    (GOOD + "encoding: {bits: 20}\n", "encoding.bits: 20 is out of range (must be [2, 16])"),
    (GOOD + "encoding: {bits: true}\n", "encoding.bits: expected an integer, got boolean"),
    (
        GOOD.replace("[0.1]", "[0.1, 1.5]"),
        "channels[0].loss_rates[1]: 1.5 is out of range (must be in [0, 1])",
    ),
    (
        GOOD.replace(
            "{kind: iid, loss_rates: [0.1]}",
            "{kind: gilbert-elliott, loss_rates: [0.6], burst_lengths: [1.2]}",
        ),
        "channels[0]: loss_rates[0]=0.6, burst_lengths[0]=1.2: "
        "burst_length 1.2 is impossible with loss_rate 0.6",
    ),
    (
        GOOD.replace(
            "{kind: iid, loss_rates: [0.1]}", "{kind: gilbert-elliott, loss_rates: [0.1]}"
        ),
        "channels[0].burst_length: required for the gilbert-elliott channel "
        "(one value, or a list as burst_lengths)",
    ),
    (
        GOOD.replace(
            "{kind: iid, loss_rates: [0.1]}", "{kind: iid, loss_rates: [0.1], burst_lengths: [4]}"
        ),
        "channels[0].burst_lengths: not a parameter of the iid channel "
        "(its parameters: loss_rates)",
    ),
    (
        GOOD.replace("kind: iid", "kind: rayleigh"),
        "channels[0].kind: unknown channel 'rayleigh' (one of iid, gilbert-elliott, trace",
    ),
    (GOOD.replace("[zeros]", "[magic]"), "methods[0]: unknown completion method 'magic' (one of "),
    (
        GOOD.replace("[zeros]", "[{name: zeros, radius: 3}]"),
        "methods[0].radius: not a parameter of the zeros completion method (its parameters: none)",
    ),
    (
        GOOD.replace("[zeros]", "[{name: halrtc, max_iters: [3, 0]}]"),
        "methods[0].max_iters[1]: 0 is out of range (must be >= 1)",
    ),
    (GOOD + "task: segmentation\n", "task: unknown task 'segmentation' (one of classification"),
    (GOOD + "encoding: {codec: mpeg}\n", "encoding.codec: unknown codec 'mpeg' (one of raw"),
    (
        GOOD + "encoding: {level: 3}\n",
        "encoding.level: not a parameter of codec raw (parameters: bits)",
    ),
    (
        GOOD.replace("data: {n_images: 20}", "data: {dataset: folder}"),
        "data.dir: required for the folder dataset",
    ),
    (
        GOOD.replace("data: {n_images: 20}", "data: {labels: none}"),
        "data.labels: unknown key (allowed here: dataset, n_images, fit_dir, subset, dir)",
    ),
    (
        GOOD + "plugins: [no_such_plugin_module]\n",
        "plugins[0]: cannot import 'no_such_plugin_module'",
    ),
    (GOOD.replace("[zeros]", "[zeros, zeros]"), "methods: zeros listed twice"),
    (
        GOOD + "packets: {order: diagonal}\n",
        "packets.order: 'diagonal' is not one of channel-major, row-major",
    ),
    (
        GOOD + "network: {bandwidth_mbps: 0}\n",
        "network.bandwidth_mbps: 0 is out of range (must be > 0)",
    ),
    (GOOD + "network: {fps: -3}\n", "network.fps: -3 is out of range"),
    (
        GOOD.replace("data: {n_images: 20}", "data: {n_images: 20, dir: /no/such/dir}"),
        "data.dir: dir '/no/such/dir' not found",
    ),
    (GOOD + "model: {weights: /no/such.pt}\n", "model.weights: file '/no/such.pt' not found"),
    (
        GOOD + "model: {split: conv9}\n",
        "model.split: unknown split point 'conv9' for model 'fmnist-resnet'",
    ),
    (GOOD + "model: {name: vgg99}\n", "model.name: unknown model 'vgg99' (one of fmnist-resnet"),
    (
        GOOD + "model: {input_size: [1, 28, 28]}\n",
        "model.input_size: unknown key (allowed here: name, import, split, weights)",
    ),
    (
        GOOD.replace("n_images: 20", "n_images: 20000"),
        "data.n_images: 20000 exceeds the 10000 images",
    ),
    (
        GOOD + "packets: {rows_per_packet: 40}\n",
        "packets.rows_per_packet: 40 exceeds the feature height 28",
    ),
    (GOOD + "trials: 2\n", "duplicate key 'trials'"),
    (
        GOOD.replace("channels:\n  - {kind: iid, loss_rates: [0.1]}\n", ""),
        "channels: required key is missing",
    ),
    (
        GOOD + "reference_method: altec\n",
        "reference_method: 'altec' is not one of the scenario's methods (zeros)",
    ),
    ("", "scenario is empty"),
    ("- 1\n- 2\n", "expected a mapping, got list"),
    (GOOD + "device: gpu\n", "device: expected cpu, cuda or cuda:N, got 'gpu'"),
    *(
        []
        if devices.gpu_available()
        else [(GOOD + "device: cuda\n", "device: 'cuda' needs a CUDA GPU, and torch ")]
    ),
]


@pytest.mark.parametrize("text,message", CASES, ids=[c[1][:40] for c in CASES])
def test_malformed_scenario_is_rejected_in_one_line(tmp_path, capsys, text, message):
    scn = write(tmp_path, text)
    out = tmp_path / "out"
    code = main(["run", str(scn), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"dfsim: error: {scn}: ") or lines[0].startswith("dfsim: error: "), (
        err
    )
    assert message in lines[0]
    assert "Traceback" not in err
    assert not (out / "results.csv").exists()


def test_device_option_is_checked_in_one_line(tmp_path, capsys):
    scn = write(tmp_path, GOOD)
    assert main(["run", str(scn), "--device", "tpu", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        "dfsim: error: --device: expected cpu, cuda or cuda:N, got 'tpu'"
    )
    assert main(["bench", "completion", "--device", "cuda:x"]) == 2
    assert "--device: expected cpu, cuda or cuda:N" in capsys.readouterr().err
    if not devices.gpu_available():
        assert main(["run", str(scn), "--device", "cuda", "--dry-run"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("dfsim: error: --device: 'cuda' needs a CUDA GPU")


def test_missing_scenario_file(capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: scenario file not found" in capsys.readouterr().err


def test_cli_process_exit_code_and_no_traceback(tmp_path):
    scn = write(tmp_path, GOOD.replace("trials: 1", "trials: -1"))
    proc = subprocess.run(
        [sys.executable, "-m", "dfsim", "run", str(scn)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"dfsim: error: {scn}: trials: -1 is out of range (must be [1, 100000])"
    )


def test_defaults_are_filled_in(tmp_path):
    s = load_scenario(write(tmp_path, GOOD))
    (cfg,) = s.configs
    assert cfg.codec.name == "raw" and cfg.codec.kwargs == {"bits": 8}
    assert cfg.packets.rows_per_packet == 4 and cfg.packets.order == "row-major"
    assert s.task.name == "classification" and s.data.dataset.kwargs == {
        "subset": "test",
        "dir": None,
    }
    assert s.network.fps == 30.0 and s.network.header_bytes == 40
    assert [c.loss_rate for c in s.cells] == [0.1]
    assert s.cells[0].burst_length == pytest.approx(1 / 0.9)
    assert s.methods[0].label == "zeros"


def test_channel_grid_expands(tmp_path):
    s = load_scenario(
        write(
            tmp_path,
            GOOD.replace(
                "{kind: iid, loss_rates: [0.1]}",
                "{kind: gilbert-elliott, loss_rates: [0.1, 0.2], burst_lengths: [2, 4, 6]}",
            ),
        )
    )
    assert [(c.loss_rate, c.burst_length) for c in s.cells] == [
        (0.1, 2),
        (0.1, 4),
        (0.1, 6),
        (0.2, 2),
        (0.2, 4),
        (0.2, 6),
    ]
    assert s.cells[1].channel.r == pytest.approx(0.25)


def test_output_path_that_is_a_file(tmp_path, capsys):
    scn = write(tmp_path, GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", str(scn), "--out", str(blocker), "--quiet"]) == 2
    assert "--out:" in capsys.readouterr().err and blocker.read_text() == "x"


def test_dry_run_prints_the_cells_and_writes_nothing(tmp_path, capsys):
    scn = write(
        tmp_path,
        GOOD.replace(
            "{kind: iid, loss_rates: [0.1]}",
            "{kind: gilbert-elliott, loss_rates: [0.1, 0.2], burst_lengths: [2, 4]}",
        ),
    )
    out = tmp_path / "out"
    assert main(["run", str(scn), "--out", str(out), "--dry-run", "--no-estimate"]) == 0
    text = capsys.readouterr().out
    assert "1 configs x 4 settings x 1 trials = 4 work units; at most 80 tensor completions" in text
    assert "GilbertElliott(p=0.0555556, r=0.5," in text
    assert not out.exists()


# --------------------------------------------------------------------------- grids
def test_grid_keys_expand_to_their_product_in_key_order(tmp_path):
    scn = load_scenario(
        write(
            tmp_path,
            GOOD + "encoding: {bits: [4, 8]}\n"
            "packets: {rows_per_packet: [2, 4, 7], order: [row-major, channel-major]}\n",
        )
    )
    got = [
        (c.codec.kwargs["bits"], c.packets.rows_per_packet, c.packets.order) for c in scn.configs
    ]
    assert got == [
        (b, r, o) for b in (4, 8) for r in (2, 4, 7) for o in ("row-major", "channel-major")
    ]
    assert scn.n_units == 12 * len(scn.cells) * scn.trials
    assert scn.configs[5].columns("add_1") == {
        "split": "add_1",
        "codec": "raw",
        "bits": 4,
        "rows_per_packet": 7,
        "order": "channel-major",
        "error_control": "none",
    }
    assert (
        scn.resolved()["packets"]["rows_per_packet"] == [2, 4, 7]
        and len(scn.resolved()["grid"]) == 12
    )


def test_zip_pairs_grid_keys_instead_of_crossing_them(tmp_path):
    scn = load_scenario(
        write(
            tmp_path,
            GOOD + "encoding: {bits: [4, 6, 8]}\n"
            "packets: {rows_per_packet: [1, 2, 4], order: [row-major, channel-major]}\n"
            "zip: [[encoding.bits, packets.rows_per_packet]]\n",
        )
    )
    got = [
        (c.codec.kwargs["bits"], c.packets.rows_per_packet, c.packets.order) for c in scn.configs
    ]
    assert got == [
        (b, r, o) for b, r in ((4, 1), (6, 2), (8, 4)) for o in ("row-major", "channel-major")
    ]


def test_split_points_can_be_a_grid(tmp_path):
    scn = load_scenario(write(tmp_path, GOOD + "model: {split: [add_1, relu_2]}\n"))
    assert [c.split for c in scn.configs] == ["add_1", "relu_2"]


def test_zipped_channel_lists_pair_loss_and_burst(tmp_path):
    scn = load_scenario(
        write(
            tmp_path,
            GOOD.replace(
                "{kind: iid, loss_rates: [0.1]}",
                "{kind: gilbert-elliott, loss_rates: [0.1, 0.2, 0.3], burst_lengths: [2, 3, 4], "
                "zip: true}",
            ),
        )
    )
    assert [(c.loss_rate, c.burst_length) for c in scn.cells] == [
        (0.1, 2.0),
        (0.2, 3.0),
        (0.3, 4.0),
    ]


def test_method_parameter_lists_expand_into_labelled_variants(tmp_path):
    scn = load_scenario(
        write(
            tmp_path,
            GOOD.replace(
                "methods: [zeros]",
                "methods: [zeros, {name: halrtc, max_iters: [2, 5], rho: [0.01, 0.1]},"
                " {name: silrtc, label: S, max_iters: [1, 3], beta: [0.1, 0.2], zip: true}]",
            ),
        )
    )
    assert [m.label for m in scn.methods] == [
        "zeros",
        "halrtc(max_iters=2,rho=0.01)",
        "halrtc(max_iters=2,rho=0.1)",
        "halrtc(max_iters=5,rho=0.01)",
        "halrtc(max_iters=5,rho=0.1)",
        "S(max_iters=1,beta=0.1)",
        "S(max_iters=3,beta=0.2)",
    ]
    assert scn.methods[3].params["max_iters"] == 5 and scn.methods[3].params["rho"] == 0.01
    assert scn.methods[6].params["beta"] == 0.2


GRID_ERRORS = [
    (
        GOOD + "encoding: {bits: [4, 20]}\n",
        "encoding.bits[1]: 20 is out of range (must be [2, 16])",
    ),
    (GOOD + "encoding: {bits: [4, 4]}\n", "encoding.bits: 4 is listed twice"),
    (GOOD + "encoding: {bits: []}\n", "encoding.bits: must not be an empty list"),
    (
        GOOD + "packets: {order: [row-major, diagonal]}\n",
        "packets.order[1]: 'diagonal' is not one of",
    ),
    (
        GOOD + "encoding: {bits: [4, 8]}\nzip: [[encoding.bits, packets.rows_per_packet]]\n",
        "zip[0]: zipped lists differ in length "
        "(encoding.bits has 2, packets.rows_per_packet has 1)",
    ),
    (GOOD + "zip: [[encoding.bits, trials]]\n", "zip[0]: 'trials' is not a grid key"),
    (GOOD + "zip: [encoding.bits]\n", "zip[0]: expected a list of at least two grid keys"),
    (
        GOOD.replace(
            "{kind: iid, loss_rates: [0.1]}",
            "{kind: gilbert-elliott, loss_rates: [0.1, 0.2], burst_lengths: [2], zip: true}",
        ),
        "channels[0].zip: zipped lists differ in length (loss_rates has 2, burst_lengths has 1)",
    ),
    (
        GOOD.replace("{kind: iid, loss_rates: [0.1]}", "{kind: iid, loss_rates: [0.1], zip: true}"),
        "channels[0].zip: fewer than two parameters are lists, nothing to zip",
    ),
    (
        GOOD.replace(
            "methods: [zeros]",
            "methods: [{name: halrtc, max_iters: [2, 5], rho: [0.1], zip: true}]",
        ),
        "methods[0].zip: zipped lists differ in length (max_iters has 2, rho has 1)",
    ),
    (
        GOOD.replace("methods: [zeros]", "methods: [{name: halrtc, max_iters: [2, -1]}]"),
        "methods[0].max_iters[1]: -1 is out of range (must be >= 1)",
    ),
    (
        GOOD.replace("methods: [zeros]", "methods: [{name: halrtc, max_iters: []}]"),
        "methods[0].max_iters: must not be an empty list",
    ),
]


@pytest.mark.parametrize("text,message", GRID_ERRORS)
def test_bad_grids_are_one_line_errors(tmp_path, capsys, text, message):
    p = write(tmp_path, text)
    assert main(["run", str(p), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_dry_run_lists_every_config(tmp_path, capsys):
    scn = write(tmp_path, GOOD + "model: {split: [add_1, relu_2]}\nencoding: {bits: [4, 8]}\n")
    assert main(["run", str(scn), "--out", str(tmp_path / "o"), "--dry-run", "--no-estimate"]) == 0
    text = capsys.readouterr().out
    assert "4 configs:" in text
    assert "split relu_2 (64x14x14), raw (bits 4), 4 rows/packet, row-major" in text
    assert "4 configs x 1 settings x 1 trials = 4 work units" in text


def test_a_bad_split_in_a_grid_is_named(tmp_path, capsys):
    scn = write(tmp_path, GOOD + "model: {split: [add_1, nowhere]}\n")
    assert main(["run", str(scn), "--dry-run"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_data_split_is_read_as_subset_with_a_note(tmp_path, capsys):
    scn = load_scenario(write(tmp_path, GOOD.replace("n_images: 20", "n_images: 20, split: train")))
    assert scn.data.dataset.kwargs["subset"] == "train"
    assert "data.split is deprecated, read as data.subset" in capsys.readouterr().err


def test_task_and_codec_are_named_components(tmp_path):
    scn = load_scenario(
        write(
            tmp_path,
            GOOD + "task: {name: classification}\nencoding: {codec: [raw], bits: [4, 8]}\n",
        )
    )
    assert scn.task.name == "classification"
    assert [c.codec.kwargs for c in scn.configs] == [{"bits": 4}, {"bits": 8}]
    assert scn.configs[0].columns("add_1")["bits"] == 4
    assert scn.configs[0].columns("x")["codec"] == "raw"  # every run names its codec


def test_the_network_section_is_read_into_the_transports_dataclasses(tmp_path):
    """One declaration: the keys land in the transport's own Link, Traffic and SideInfo,
    the stage of each config is made of those objects, and the section reads back flat."""
    from dfsim.experiment.prepare import transport_for
    from dfsim.transport.jitter import Jitter
    from dfsim.transport.settings import Link, NetworkSettings, SideInfo, Traffic

    network = (
        "network: {bandwidth_mbps: 20, fps: 15, devices: 2, buffer_bytes: 9000, "
        "jitter: {distribution: exponential, mean_ms: 1}, deadline_ms: 40, cloud_ms: 2, "
        "side_info: {placement: own-packet, on_loss: previous}}\n"
        "error_control: {arq: {max_retries: 3}}\n"
    )
    s = load_scenario(write(tmp_path, GOOD + network))
    nw = s.network
    assert isinstance(nw, NetworkSettings)
    assert nw.link == Link(bandwidth_bps=20e6, buffer_bytes=9000, jitter=Jitter("exponential", 1))
    assert nw.traffic == Traffic(fps=15.0, devices=2)
    assert nw.side_info == SideInfo("own-packet", "previous")
    assert (nw.bandwidth_mbps, nw.fps, nw.devices, nw.mtu_bytes) == (20.0, 15.0, 2, 1500)
    stage = transport_for(s, s.configs[0])
    assert stage.link is nw.link and stage.traffic is nw.traffic
    assert stage.side_info is nw.side_info and stage.deadline_ms == 40
    assert stage.arq.max_retries == 3 and stage.fec is None
    section = s.resolved()["network"]
    assert list(section) == list(NetworkSettings.KEYS)
    assert section["jitter"] == {"dist": "exponential", "a": 1.0, "b": 0.0}
    assert section["side_info"] == {"placement": "own-packet", "on_loss": "previous"}


def test_the_network_defaults_are_the_scenarios():
    from dfsim.transport.settings import NetworkSettings

    assert NetworkSettings().section() == {
        "bandwidth_mbps": 10.0,
        "propagation_ms": 5.0,
        "header_bytes": 40,
        "fps": 30.0,
        "mtu_bytes": 1500,
        "buffer_bytes": None,
        "jitter": None,
        "deadline_ms": None,
        "devices": 1,
        "arrivals": "periodic",
        "edge_ms": 0.0,
        "cloud_ms": 0.0,
        "completion_time": "none",
        "side_info": {"placement": "first-packet", "on_loss": "assume-delivered"},
    }


@pytest.mark.parametrize(
    "network,message",
    [
        ("{side_info: {bits: 8}}", "network.side_info.bits: not a parameter of network.side_info"),
        ("{header_bytes: 70000}", "network.header_bytes: 70000 is out of range"),
        ("{devices: 0}", "network.devices: 0 is out of range"),
        ("{completion_time: yes}", "network.completion_time: True is not one of none, measured"),
        ("{header_bytes: 1500}", "network.header_bytes: 1500 leaves no payload"),
        ("{bandwidth_mbps: 1.0e+308}", "network: bandwidth_bps: inf is out of range"),
    ],
)
def test_network_keys_are_checked_by_the_transports_declarations(tmp_path, network, message):
    with pytest.raises(Exception, match=message):
        load_scenario(write(tmp_path, GOOD + f"network: {network}\n"))


def test_the_old_spec_names_still_import():
    from dfsim.experiment import scenario
    from dfsim.transport.settings import NetworkSettings, SideInfo

    assert scenario.NetworkSpec is NetworkSettings and scenario.SideInfoSpec is SideInfo
    for name in ("Component", "Config", "ChannelSetting", "MethodSpec", "Scenario", "read_yaml"):
        assert hasattr(scenario, name)
