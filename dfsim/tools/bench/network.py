"""``dfsim bench network``: packets per second through the SimPy network model (devices,
drop-tail buffer, link, channel, receiver; with and without ARQ and FEC), one process,
one core."""

from __future__ import annotations

import numpy as np

from dfsim.tools.bench.tables import network_line
from dfsim.tools.bench.timing import rate

N_IMAGES = 1000  # images per simulated run
PACKETS = 224  # data packets per image
PAYLOAD_BITS = 8 * 112  # 112-byte payloads; the network adds header and side info
LOSS, BURST = 0.3, 4  # the Gilbert-Elliott channel every case shares


def cases() -> dict:
    """The network settings timed: label -> keyword arguments of ``simulate``."""
    from dfsim.transport.network import Arq, Fec, Jitter, Link, Traffic

    link = Link(bandwidth_bps=20e6, buffer_bytes=200_000, jitter=Jitter("exponential", 1.0))
    timed = {"link": link, "traffic": Traffic(fps=30.0), "deadline_ms": 40}
    return {
        "defaults (30 fps, unlimited buffer)": {"link": Link(), "traffic": Traffic(fps=30.0)},
        "batch upload": {"link": Link(), "traffic": Traffic(fps=None)},
        "buffer + jitter + 40 ms deadline": timed,
        "... + FEC(8,2)": {**timed, "fec": Fec(8, 2)},
        "... + ARQ(3)": {**timed, "arq": Arq(3, 2.0)},
        "4 devices, Poisson, ARQ(3)": {
            "link": link,
            "traffic": Traffic(fps=7.5, arrivals="poisson", devices=4),
            "deadline_ms": 40,
            "arq": Arq(3, 2.0),
        },
    }


def bench_network(args) -> dict:
    """Packets/s of each of :func:`cases` (``args.seconds`` each); prints a line per case."""
    from dfsim.transport.channels import GilbertElliott
    from dfsim.transport.network import simulate

    payload = np.full(PACKETS, PAYLOAD_BITS)
    ch = GilbertElliott.from_loss_burst(LOSS, BURST)
    setup = f"{PACKETS} data, Gilbert-Elliott {LOSS:g}/{BURST:g}"
    out = {}
    for label, kw in cases().items():
        sent = {}

        def once(kw=kw, sent=sent):
            tx = simulate(N_IMAGES, payload, ch, np.random.default_rng(0), **kw)
            sent["packets"] = tx.packets_sent

        runs_per_s = rate(once, 1, args.seconds)
        pps = runs_per_s * sent["packets"]
        out[label] = round(pps)
        print(network_line(label, pps, sent["packets"] / N_IMAGES, setup))
    return {"packets_per_s": out}
