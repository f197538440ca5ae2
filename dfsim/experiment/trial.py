"""One work unit: one (config, channel setting, trial) -> one loss pattern, every method.

The transport draws the loss pattern with a generator seeded from
``SeedSequence([seed, setting, trial])``; the receiver decodes what arrived; every method
completes the same damaged tensors (a paired comparison); the cloud sub-model and the task
score each. A unit's numbers depend only on (scenario, config, setting, trial).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dfsim.errors import UserError
from dfsim.experiment import profiling
from dfsim.experiment.multi_task import MultiTask
from dfsim.experiment.prepare import Prepared, predict, users_model
from dfsim.experiment.profiling import phase
from dfsim.experiment.specs import ChannelSetting
from dfsim.kernels import njit
from dfsim.stages import Transmission


@dataclass
class UnitResult:
    """What one work unit measured: the values shared by every method of the trial
    (setting, config, transport) and one metrics dict per method."""

    unit: tuple[int, int, int]
    shared: dict
    methods: list[tuple[str, dict]]

    def rows(self) -> list[dict]:
        """One results row per method."""
        return [{"method": label, **self.shared, **m} for label, m in self.methods]


def trial_rng(seed: int, cell: ChannelSetting, trial: int) -> np.random.Generator:
    """The loss channel's generator of (setting, trial)."""
    return np.random.default_rng(np.random.SeedSequence([seed, cell.seed_key, trial]))


def transmit(prep: Prepared, cell: ChannelSetting, trial: int) -> Transmission:
    """The transport's run for one (setting, trial): a pure function of its inputs.
    Arrivals and jitter draw from their own stream, so the loss stream is the same with
    or without them."""
    scn = prep.scenario
    aux = np.random.default_rng(np.random.SeedSequence([scn.seed, cell.seed_key, trial, 1]))
    n = prep.n_images
    channel = cell.channel.for_trial(trial, n * prep.packets_per_image)
    return prep.transport.send(
        n, prep.payload_bits, prep.side_info_bits, channel, trial_rng(scn.seed, cell, trial), aux
    )


def transport_metrics(prep: Prepared, tx: Transmission) -> dict:
    """The trial's network columns (the same for every method)."""
    n = prep.n_images
    latency = tx.latency_ms
    causes = tx.loss_by_cause()
    return {
        "realised_loss_rate": float(tx.lost.mean()),
        "latency_mean_ms": float(latency.mean()),
        "latency_p95_ms": float(np.percentile(latency, 95)),
        "wire_bits_per_image": int(round(tx.bits_sent / n)),
        "packets_per_image": prep.packets_per_image,
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p99_ms": float(np.percentile(latency, 99)),
        "channel_loss_rate": causes["channel"],
        "congestion_loss_rate": causes["congestion"],
        "deadline_loss_rate": causes["deadline"],
        "side_info_loss_rate": float(tx.side_info_lost.mean()),
        "retransmissions_per_image": tx.retransmissions / n,
    }


def run_trial(prep: Prepared, cell_index: int, trial: int, methods: list) -> UnitResult:
    """One Monte Carlo trial of one channel setting: one loss pattern, every method."""
    scn = prep.scenario
    cell = scn.cells[cell_index]
    with phase("network (SimPy)"):
        tx = transmit(prep, cell, trial)
    with phase("reassembly and decoding"):
        delivery = prep.receiver.receive(tx, prep.streams)
    shared = {
        "channel": cell.kind,
        "loss_rate": cell.loss_rate,
        "burst_length": cell.burst_length,
        "trial": trial,
        "n_images": prep.n_images,
        **transport_metrics(prep, tx),
        **prep.coding,
        "decode_ms_per_tensor": 1e3 * delivery.decode_s / prep.n_images,
        "undecodable_rate": delivery.undecodable / (prep.n_images * prep.packets_per_image),
        **prep.columns(),
    }
    with phase("scoring (task metrics)"):
        lost_rows = LostRows(prep, delivery.lost) if delivery.n_lost else None
    outcomes = []
    for spec, per_stream in methods:
        metrics = _method_metrics(prep, tx, delivery, per_stream, spec.label, lost_rows)
        outcomes.append((spec.label, metrics))
    return UnitResult((prep.index, cell_index, trial), shared, outcomes)


def _method_metrics(
    prep: Prepared,
    tx: Transmission,
    delivery,
    per_stream: list,
    label: str = "",
    lost_rows: LostRows | None = None,
) -> dict:
    """Complete, run the cloud, score: one method's columns (``lost_rows``: where the
    unit's lost entries are, for the error on them; None when nothing was lost)."""
    n = prep.n_images
    damaged = delivery.damaged
    t0 = time.perf_counter()
    repaired = (
        [
            m.complete_batch(r, lo, s.layout)
            for m, r, lo, s in zip(
                per_stream, delivery.tensors, delivery.lost, prep.streams, strict=True
            )
        ]
        if damaged
        else delivery.tensors
    )
    dt = time.perf_counter() - t0
    profiling.add(f"completion: {label}", dt)
    for out, given in zip(repaired, delivery.tensors, strict=True):
        if np.shape(out) != np.shape(given):  # a plug-in method broke its contract
            raise UserError(
                f"methods ({label}): complete_batch returned "
                f"{'x'.join(map(str, np.shape(out)))} for a "
                f"{'x'.join(map(str, np.shape(given)))} batch: expected the same shape"
            )
    iters = (
        [i for m in per_stream for i in (getattr(m, "iterations", None) or [])] if damaged else None
    )
    # Nothing lost: the cloud sees exactly the loss-free tensors, whose predictions we have.
    with phase("cloud pass"):
        pred = (
            predict(
                prep.task,
                prep.cloud,
                repaired,
                prep.scenario.batch_size,
                users=users_model(prep.scenario),
            )
            if damaged
            else prep.reference_pred
        )
    if delivery.dropped is not None and delivery.dropped.any():
        pred = no_answer(prep.task, pred, delivery.dropped)
    e2e = cloud_latency_ms(tx, prep.scenario.network, 1e3 * dt / n)
    with phase("scoring (task metrics)"):
        scores = prep.task.evaluate(pred, prep.reference_pred, prep.targets)
        mse = lost_rows.mse(repaired) if lost_rows is not None else 0.0
    return {
        **scores,
        "completion_ms_per_tensor": 1e3 * dt / n,
        "completion_iters": float(np.mean(iters)) if iters else 0.0,
        "mse_lost": mse,
        "e2e_latency_mean_ms": float(e2e.mean()),
        "e2e_latency_p95_ms": float(np.percentile(e2e, 95)),
    }


def no_answer(task, pred, dropped: np.ndarray):
    """``pred`` with no answer for the ``dropped`` images: the task's own ``no_answer``,
    else class -1 for a classifier and no detections for a detector (class -1 rows)."""
    own = getattr(task, "no_answer", None)
    if own is not None:
        return own(pred, dropped)
    if isinstance(task, MultiTask):  # each task's field, as that task says
        out = np.array(pred, copy=True)
        for name, part in task.parts:
            out[name] = no_answer(part, pred[name], dropped)
        return out
    out = np.array(pred, copy=True)
    if out.ndim == 1:  # class indices
        out[dropped] = -1
    elif out.ndim == 3 and out.shape[-1] == 6:  # detections N x D x 6
        out[dropped] = 0
        out[dropped, :, 5] = -1
    else:
        raise UserError(
            f"encoding.on_fragment_loss: drop-image needs a task whose predictions can say "
            f"'no answer'; task {getattr(task, 'name', '?')!r} cannot (use lose-tensor)"
        )
    return out


class LostRows:
    """The rows (along the last axis) of each stream that hold lost entries, and the loss
    mask on those rows: found once per unit, so that each method's :meth:`mse` reads only
    those rows (a lost packet is a band of rows, so they are a fraction of the tensor)."""

    def __init__(self, prep: Prepared, lost: list):
        self.rows, self.mask, self.reference, self.at = [], [], [], []
        count = 0
        for s, lo in zip(prep.streams, lost, strict=True):
            w = lo.shape[-1]
            rows = np.flatnonzero(lo.reshape(-1, w).any(axis=1))
            mask = np.ascontiguousarray(lo.reshape(-1, w)[rows])
            self.rows.append(rows)
            self.mask.append(mask)
            self.reference.append(np.asarray(s.reference).reshape(-1, w))
            self.at.append(count)
            count += int(mask.sum())
        self.squares = np.empty(count)

    def mse(self, repaired: list) -> float:
        """Mean squared error of the completed values on the lost entries of every stream:
        ``np.mean(np.square((repaired - reference)[lost], dtype=np.float64))``, the same
        squares in the same order, without the full-size difference and mask copies."""
        for r, rows, lo, ref, k in zip(
            repaired, self.rows, self.mask, self.reference, self.at, strict=True
        ):
            _squared_errors(np.asarray(r).reshape(ref.shape), ref, rows, lo, self.squares[k:])
        return float(np.mean(self.squares))


@njit(cache=True)
def _squared_errors(repaired, reference, rows, lost, out):
    """``out[:n] = np.square((repaired[rows] - reference[rows])[lost], dtype=np.float64)``:
    the difference in the arrays' precision, as numpy computes it, squared in float64
    (``lost``: the loss mask of the ``rows`` listed, one row of it per listed row)."""
    n = 0
    for i in range(rows.shape[0]):
        row = rows[i]
        for col in range(repaired.shape[1]):
            if lost[i, col]:
                diff = np.float64(repaired[row, col] - reference[row, col])
                out[n] = diff * diff
                n += 1


def cloud_latency_ms(tx: Transmission, nw, completion_ms: float) -> np.ndarray:
    """End-to-end latency: the cloud serves images one at a time in delivery order, each
    for ``cloud_ms`` (cloud sub-model) plus, with ``completion_time: measured``, the
    method's measured completion time per tensor."""
    service = nw.cloud_ms + (completion_ms if nw.completion_time == "measured" else 0.0)
    if service == 0:
        return tx.latency_ms
    order = np.argsort(tx.delivered_s, kind="stable")
    finish = np.empty(len(order))
    t = -np.inf
    for j, i in enumerate(order):  # Lindley recursion
        t = max(t, tx.delivered_s[i] * 1e3) + service
        finish[j] = t
    out = np.empty(len(order))
    out[order] = finish - tx.capture_s[order] * 1e3
    return out
