"""Running work units: in this process, on local worker processes, or on a Dask cluster,
with crash-safe checkpoints.

A work unit is one (config, channel setting, trial); its numbers depend only on those,
so any number of workers in any order gives the same results. Every process runs torch
and BLAS with ONE thread (whatever the worker count), so the cloud sub-model's arithmetic
is the same everywhere. Each process keeps one :class:`WorkerContext` (the scenario and
each config's prepared state, made on first use): the only state a worker holds. A
process keeps the prepared states it used last, up to :data:`HELD_BYTES` of decoded
tensors (at least one config); an evicted config is prepared again, from the on-disk
cache, if a unit needs it. Units go to the workers config by config, so each config is
prepared about once per worker. The main process keeps each config's state for the
run's outputs without its decoded tensors (:func:`without_tensors`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import cv2
import torch

from dfsim import reproducibility
from dfsim.errors import UserError, note, notes_once, silence_notes
from dfsim.experiment import profiling
from dfsim.experiment.checkpoint import Checkpoint, fingerprint, refuse_other_run
from dfsim.experiment.model_and_task import build_model
from dfsim.experiment.prepare import Prepared, build_methods, prepare
from dfsim.experiment.scenario import Scenario, load_plugins
from dfsim.experiment.trial import run_trial

Unit = tuple[int, int, int]  # (config, channel setting, trial)
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


# The decoded tensors a process keeps across configs before it evicts the least recently
# used config (36 configs of two 32x28x28 tensors of 1 000 images hold 7 GB of them).
HELD_BYTES = 1 << 30


def tensor_bytes(prep: Prepared) -> int:
    """The bytes of a prepared config's loss-free decoded tensors (its bulk)."""
    return sum(s.reference.nbytes for s in prep.streams if s.reference is not None)


def without_tensors(prep: Prepared) -> Prepared:
    """``prep`` without its loss-free decoded tensors: enough for the run's outputs
    (manifest, references, loss patterns), not for running units."""
    return dataclasses.replace(
        prep, streams=[dataclasses.replace(s, reference=None) for s in prep.streams]
    )


class WorkerContext:
    """A process's scenario and, per config, its prepared state and methods: the most
    recently used ones, up to ``held_bytes`` of decoded tensors."""

    def __init__(self, scn: Scenario, fingerprint: str = "", held_bytes: int | None = None):
        self.scenario, self.fingerprint = scn, fingerprint
        self.held_bytes = HELD_BYTES if held_bytes is None else held_bytes
        self.configs: dict[int, tuple[Prepared, list]] = {}  # least recently used first

    def config(self, k: int, log=None) -> tuple[Prepared, list]:
        """Config ``k``'s prepared state and methods, made on first use in this process
        (again after an eviction)."""
        if k in self.configs:
            self.configs[k] = self.configs.pop(k)  # now the most recently used
            return self.configs[k]
        prep = prepare(self.scenario, k)
        self.configs[k] = (prep, build_methods(prep, log))
        held = sum(tensor_bytes(p) for p, _ in self.configs.values())
        while held > self.held_bytes and len(self.configs) > 1:
            oldest = next(iter(self.configs))
            held -= tensor_bytes(self.configs.pop(oldest)[0])
        return self.configs[k]

    def run(self, unit: Unit) -> tuple[Unit, list[dict], dict]:
        """The unit's rows, and (when profiling) this process's phases since its last unit."""
        k, cell, trial = unit
        prep, methods = self.config(k)
        rows = run_trial(prep, cell, trial, methods).rows()
        return unit, rows, {"pid": os.getpid(), "phases": profiling.take()}


_context: WorkerContext | None = None  # this process's context, set by _init_worker
_init_lock = threading.Lock()  # a Dask worker may run several units at once


def _init_worker(
    plugins: tuple[str, ...], scenario: bytes, fp: str = "", started: float | None = None
) -> None:
    """Process initialiser: one thread, the user's plugins imported, then the scenario."""
    global _context
    if started is not None:  # profiling: the pool was created at ``started`` (time.time())
        profiling.enable()  # numba's compilations in this worker are timed from now
        profiling.add("worker start-up (spawn, imports, scenario)", time.time() - started)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    silence_notes()  # the main process prepared the same configs and said their notes
    load_plugins(plugins)
    _context = WorkerContext(pickle.loads(scenario), fp)


def warm_config(k: int) -> None:
    """Prepare config ``k`` in this worker for the on-disk cache only (features, codings,
    loss-free predictions, fitted methods), without keeping it: units prepare their config
    again, from the cache, on first use."""
    prep = prepare(_context.scenario, k)
    build_methods(prep)


def run_unit(unit: Unit) -> tuple[Unit, list[dict], dict]:
    """Run a unit in this process's context."""
    return _context.run(unit)


def _dask_unit(unit: Unit, plugins, scenario: bytes, fp: str) -> tuple[Unit, list[dict], dict]:
    """A work unit on a Dask worker: the worker prepares each config once, on first use."""
    with _init_lock:
        if _context is None or _context.fingerprint != fp:
            _init_worker(plugins, scenario, fp)
    unit, rows, info = run_unit(unit)
    return unit, rows, {**info, "kernels_exact": reproducibility.state()["exact"]}


@contextlib.contextmanager
def _single_threaded_children():
    """Workers are the parallelism: each must run its BLAS single-threaded, else the
    workers' spinning BLAS threads fight over the cores (benchmarks/transport-notes.md)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def connect_dask(address: str):
    """A Dask client, or a one-line error (checked before anything is written)."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise UserError(
            "--dask: needs dask.distributed (pip install 'dask[distributed]')"
        ) from None
    _probe(address)
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise UserError(f"--dask: cannot reach the scheduler at {address!r}: {exc}") from None


def _probe(address: str) -> None:
    """A TCP scheduler that refuses the connection is a one-line error at once, rather than
    after the client's 10 s of retries (other protocols and slow networks are left to the
    client)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp":
        return
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return  # not host:port: the client says what is wrong with it
    if host is None or port is None:
        return
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except ConnectionRefusedError as exc:
        raise UserError(f"--dask: cannot reach the scheduler at {address!r}: {exc}") from None
    except OSError:
        return  # unreachable in other ways (timeouts, DNS): the client retries and says so


def run(
    scn: Scenario,
    progress=None,
    log=None,
    workers: int | None = None,
    checkpoint_dir=None,
    dask: str | None = None,
) -> tuple[list[dict], list[Prepared]]:
    """Run every (config, setting, trial) of ``scn``; returns the result rows (in config,
    setting, trial, method order) and each config's prepared state. ``workers`` local
    processes (default: all cores), or the Dask scheduler at ``dask``. With
    ``checkpoint_dir``, finished units are saved there and a rerun resumes from them."""
    global _context
    units = [
        (k, c, t)
        for k in range(len(scn.configs))
        for c in range(len(scn.cells))
        for t in range(scn.trials)
    ]
    workers = max(1, min(workers or os.cpu_count() or 1, len(units)))
    client = connect_dask(dask) if dask else None  # fail fast, before anything is written
    torch.set_num_threads(1)
    _context = WorkerContext(scn)
    try:
        with notes_once():
            return _run(scn, units, workers, client, progress, log, checkpoint_dir)
    finally:
        _context = None  # the run's state goes with the run


def _run(scn, units, workers, client, progress, log, checkpoint_dir):
    """:func:`run`'s body, with the process's context set."""
    # Local workers start (spawn, imports) while this process prepares.
    pool = _start_pool(scn, workers) if client is None and workers > 1 else None
    try:
        return _prepare_and_run(scn, units, workers, client, progress, log, checkpoint_dir, pool)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _prepare_and_run(scn, units, workers, client, progress, log, checkpoint_dir, pool):
    # Every config prepared (and its trained methods fitted into the cache) up front: a bad
    # split or packet size fails before any work, and workers only load from the cache.
    # With several configs the workers prepare them first, in parallel, into the cache: the
    # main process then loads what they made (a loss-free sweep is all preparation).
    # The run's fingerprint needs the model's weights only: a leftover run of another
    # scenario in --out is refused before anything is prepared.
    fp = _context.fingerprint = fingerprint(
        scn.resolved(), build_model(scn, scn.configs[0])[0].weights_id
    )
    if checkpoint_dir is not None:
        refuse_other_run(checkpoint_dir, fp)
    if pool is not None and len(scn.configs) > 1:
        for fut in as_completed([pool.submit(warm_config, k) for k in range(len(scn.configs))]):
            fut.exception()  # a config that fails says so below, in order, from this process
    preps = [without_tensors(_context.config(k, log)[0]) for k in range(len(scn.configs))]
    results: dict[Unit, list[dict]] = {}
    if profiling.enabled():
        _context.profile = {"main": {}}
        profiling.merge(_context.profile["main"], profiling.take())
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Checkpoint(checkpoint_dir, fp)
        results = {u: rows for u, rows in ckpt.done().items() if u in set(units)}
        if results and log:
            log(f"dfsim: resuming: {len(results)} of {len(units)} work units already done")
        if progress is not None and results:
            progress(len(results))
    todo = [u for u in units if u not in results]

    names: dict[int, str] = {os.getpid(): "main"}

    def finished(unit, rows, prof=None):
        results[unit] = rows
        if prof and prof["phases"]:
            name = names.setdefault(prof["pid"], f"worker {len(names)}")
            profiling.merge(_context.profile.setdefault(name, {}), prof["phases"])
        if ckpt is not None:
            ckpt.save(unit, rows)
        if progress is not None:
            progress(1)

    if client is not None:
        with client:
            _on_dask(client, scn, fp, todo, finished)
    elif pool is None or len(todo) <= 1:
        for unit in todo:
            finished(*run_unit(unit))
    else:
        _on_processes(pool, scn, workers, todo, finished)
    profiling.last_run = getattr(_context, "profile", None)  # per process, for the caller
    return [row for unit in units for row in results[unit]], preps


def _start_pool(scn: Scenario, workers: int) -> ProcessPoolExecutor:
    """``workers`` local worker processes, started now: a spawning pool starts a process per
    task submitted while none is idle, so one no-op task each starts them all."""
    ctx = multiprocessing.get_context("spawn")  # no fork after torch has started threads
    with _single_threaded_children():
        pool = ProcessPoolExecutor(
            workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(
                scn.plugins,
                pickle.dumps(scn),
                "",
                time.time() if profiling.enabled() else None,
            ),
        )
        for _ in range(workers):
            pool.submit(os.getpid)
    return pool


def _on_processes(pool, scn: Scenario, workers: int, todo: list[Unit], finished, restarts=1):
    """Run ``todo`` on ``pool``. A worker that dies (killed, out of memory) breaks the pool:
    the units left run once more on fresh workers; a second death is a one-line error (the
    finished units are checkpointed, so a rerun resumes)."""
    # Config by config (each worker then holds few configs at once); within a config the
    # costliest units (highest loss) first.
    left = sorted(todo, key=lambda u: (u[0], -scn.cells[u[1]].loss_rate, u))
    try:
        futures = {pool.submit(run_unit, u): u for u in left}
        for fut in as_completed(futures):
            if not isinstance(fut.exception(), BrokenProcessPool):
                finished(*fut.result())
                left.remove(futures[fut])
    except BrokenProcessPool:  # broken before every unit was submitted
        pass
    if not left:
        return
    if not restarts:
        raise UserError(
            f"a worker process died again (killed, or out of memory?) with {len(left)} work "
            "units left; the finished ones are kept: rerun the same command to resume"
        )
    note(
        "a worker process died (killed, or out of memory?); running the "
        f"{len(left)} work units left on fresh workers"
    )
    pool.shutdown(cancel_futures=True)
    fresh = _start_pool(scn, workers)
    try:
        _on_processes(fresh, scn, workers, left, finished, restarts - 1)
    finally:
        fresh.shutdown(cancel_futures=True)


def _on_dask(client, scn: Scenario, fp: str, todo: list[Unit], finished) -> None:
    from dask.distributed import as_completed as dask_completed

    blob = pickle.dumps(scn)
    futures = [client.submit(_dask_unit, u, scn.plugins, blob, fp, pure=False) for u in todo]
    for fut in dask_completed(futures):
        unit, rows, info = fut.result()
        if not info.pop("kernels_exact", True):
            note(
                "a Dask worker could not pin its CPU kernels (numpy or torch loaded before "
                "dfsim there): its numbers may differ in the last digits; start the workers "
                "with the settings of dfsim.reproducibility.PINS in their environment"
            )
        finished(unit, rows, info)
