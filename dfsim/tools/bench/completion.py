"""``dfsim bench completion``: each completion method's time per tensor called one at a time
(median), iterations, MSE on the lost entries, batched throughput and time per tensor, the
ratio of the single call's time to the batched one's and, for iterative methods, time per
iteration, on the default model's real features and on synthetic tensors."""

from __future__ import annotations

import time

import numpy as np

from dfsim.errors import UserError
from dfsim.reproducibility import cpu_model
from dfsim.tools.bench.features import completion_features, synthetic_features
from dfsim.tools.bench.tables import completion_case_header, completion_row


def bench_completion(args) -> dict:
    """Per-method time per tensor (median), iterations, MSE on lost entries, batched throughput
    and, for iterative methods, time per iteration per tensor amortised over the batch."""
    import torch

    from dfsim import completion
    from dfsim.transport.channels import GilbertElliott
    from dfsim.transport.packets import PacketLayout

    rng = np.random.default_rng(0)
    cases = _cases(args, rng)
    try:
        channel = GilbertElliott.from_loss_burst(args.loss, args.burst)
    except ValueError as exc:
        raise UserError(f"--loss/--burst: {exc}") from None
    methods = args.methods.split(",") if args.methods else completion.available_methods()
    report = {
        "loss_rate": args.loss,
        "burst_length": args.burst,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "cpu": cpu_model(),
        "cases": {},
    }
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}")
    for label, x, train, rows in cases:
        layout = PacketLayout.for_shape(x.shape[1:], rows)
        lost = layout.lost_mask(channel.sample(len(x) * layout.packets_per_tensor, rng))
        damaged = np.where(lost, 0, x).astype(np.float32)
        print(
            completion_case_header(
                label, x.shape[1:], rows, lost.mean(), args.loss, args.burst, args.batch
            )
        )
        rows_out = {}
        for name in methods:
            m = completion.make(name)
            m.device = args.device
            if m.needs_fit:
                m.fit(train, layout)
            r = rows_out[name] = time_method(m, x, damaged, lost, layout, args.repeats, args.batch)
            print(completion_row(name, r))
        report["cases"][label] = {
            "shape": list(x.shape[1:]),
            "rows_per_packet": rows,
            "lost_fraction": float(lost.mean()),
            "methods": rows_out,
        }
    return report


def _cases(args, rng: np.random.Generator) -> list[tuple]:
    """(label, test tensors, training tensors, rows per packet): the default model's real
    features unless ``--shape`` is given, and synthetic tensors of ``--shape`` (default
    64x56x56). Checks ``--shape`` and ``--methods`` on the way."""
    from dfsim.registry import entry

    cases = []
    if args.shape is None:
        test, train, label = completion_features(
            max(args.batch, args.repeats), args.rows_per_packet or 4
        )
        cases.append((label, test, train, args.rows_per_packet or 4))
        shape = (64, 56, 56)
    else:
        try:
            shape = tuple(int(v) for v in args.shape.lower().split("x"))
            assert len(shape) == 3 and min(shape) > 0
        except (ValueError, AssertionError):
            raise UserError(
                f"--shape: expected CxHxW with positive integers, got {args.shape!r}"
            ) from None
    for name in args.methods.split(",") if args.methods else []:
        entry("completion", name, "--methods")  # unknown names: one-line error
    n = max(args.batch, args.repeats)
    cases.append(
        (
            f"synthetic {'x'.join(map(str, shape))}",
            synthetic_features(rng, n, shape),
            synthetic_features(rng, 200, shape),
            args.rows_per_packet or 8,
        )
    )
    return cases


def time_method(m, x, damaged, lost, layout, repeats: int, batch: int) -> dict:
    """Median time of one tensor per ``complete()`` call (after a warm-up), iterations, MSE
    on lost entries; the batched path's time per tensor (the median of up to 3 runs of
    ``complete_batch`` over ``batch`` tensors, as the pipeline calls it) and the ratio of the
    two."""
    m.complete(damaged[0], lost[0], layout)  # warm-up (numba compilation, caches)
    times, iters, errs = [], [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        y = m.complete(damaged[i], lost[i], layout)
        times.append(time.perf_counter() - t0)
        iters.append(float(np.mean(m.iterations or [0])))
        errs.append(np.square(y - x[i])[lost[i]])
    ms = 1e3 * float(np.median(times))
    it = float(np.mean(iters))
    runs, start = [], time.perf_counter()
    while not runs or (len(runs) < 3 and time.perf_counter() - start < 2.0):
        t0 = time.perf_counter()
        m.complete_batch(damaged[:batch], lost[:batch], layout)
        runs.append(time.perf_counter() - t0)
    dt = float(np.median(runs))
    batch_iters = int(np.sum(m.iterations or [0]))
    batched_ms = 1e3 * dt / batch
    return {
        "ms_per_tensor": round(ms, 4),
        "ms_per_iter": round(ms / it, 4) if it else None,
        "iters": it,
        "mse": float(np.mean(err)) if (err := np.concatenate(errs)).size else float("nan"),
        "tensors_per_s_batched": round(batch / dt, 1),
        "ms_per_iter_batched": round(1e3 * dt / batch_iters, 4) if batch_iters else None,
        "ms_per_tensor_batched": round(batched_ms, 4),
        "single_vs_batched": round(ms / batched_ms, 2),
    }
