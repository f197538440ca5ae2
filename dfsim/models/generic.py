"""Split any PyTorch classifier at a named point: ``torch.fx`` graph splitting, with a
hook-based fallback for models fx cannot trace.

**Split points.** The model is traced with modules up to two levels deep (``layer1``,
``layer1.0``, ``_blocks.3``) kept whole; every traced operation that outputs a tensor
is a candidate split point, named by its module path (``_blocks.3``) or, for a function
such as a residual ``add``, by its fx node name. ``describe()`` lists them with the
shapes of the tensors that cross the cut and the share of the compute done on the edge
(``describe`` times each graph node with an fx interpreter).

**Cutting.** The edge sub-model runs every node up to and including the split point and
returns every tensor that a later node still needs: when the cut crosses a skip
connection, that is more than one tensor, and all of them must be transmitted. The cloud
sub-model takes those tensors (in the order ``crossing(split)`` gives) and runs the rest.
Parameters (``get_attr`` nodes) never cross: both halves share the module.

**Fallback.** If fx cannot trace the model (data-dependent control flow), the split
points are the named submodules, and the cut is made with forward hooks: the edge runs
the model until the split module has produced its output, the cloud runs the model again
with that module's output replaced by the received tensor. This assumes the split
module's output is the only tensor crossing the cut (true for sequential chains); the
cloud recomputes the edge layers (their result is discarded), so it is slower.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from dfsim.errors import UserError
from dfsim.stages import Crossing


class _BlockTracer(fx.Tracer):
    """Keep modules at most ``depth`` levels deep whole (besides torch's own leaves)."""

    def __init__(self, depth: int = 2):
        super().__init__()
        self.depth = depth

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return super().is_leaf_module(m, qualname) or (
            qualname.count(".") + 1 >= self.depth and qualname != ""
        )


def _point_name(node: fx.Node) -> str:
    return node.target if node.op == "call_module" else node.name


class _StopForward(Exception):
    pass


class _NotCuttable(Exception):
    pass


@dataclass
class GraphSplitModel:
    """The :class:`~dfsim.stages.SplitModel` interface for any ``nn.Module``."""

    name: str
    module: nn.Module
    input_shape: tuple[int, int, int]
    default_split: str | None = None
    num_classes: int = 0
    weights_id: str = ""
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    traced: bool = True
    _shapes: dict[str, list[tuple[int, ...]]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.module.eval()
        sample = torch.zeros((1, *self.input_shape))
        try:
            graph = _BlockTracer().trace(self.module)
            self.gm = fx.GraphModule(self.module, graph)
        except Exception as exc:  # noqa: BLE001 - any tracing failure means: use hooks
            self.traced, self.trace_error = False, f"{type(exc).__name__}: {exc}"
            self._init_hooks(sample)
        else:
            self._init_graph(sample)
        with torch.no_grad():
            out = self.module(sample)
        self.num_classes = self.num_classes or int(out.shape[-1])
        if self.default_split is None:
            singles = [
                p
                for p in self.split_points
                if len(self._shapes[p]) == 1 and len(self._shapes[p][0]) == 3
            ]
            self.default_split = singles[len(singles) // 3] if singles else self.split_points[0]

    # ------------------------------------------------------------------ fx
    def _init_graph(self, sample: torch.Tensor) -> None:
        from torch.fx.passes.shape_prop import ShapeProp

        with torch.no_grad():
            ShapeProp(self.gm).propagate(sample)
        self.nodes = [n for n in self.gm.graph.nodes if n.op != "output"]
        self._order = {n: i for i, n in enumerate(self.nodes)}
        self._points: dict[str, fx.Node] = {}
        for n in self.nodes:
            meta = n.meta.get("tensor_meta")
            if n.op in ("call_module", "call_function", "call_method") and hasattr(meta, "shape"):
                name = _point_name(n)
                self._points[name if name not in self._points else n.name] = (
                    n  # a module called twice
                )
        output = next(n for n in self.gm.graph.nodes if n.op == "output")
        self._output = output
        # the last point is the classifier output: not a split point
        last = next(iter(output.all_input_nodes), None)
        if last is not None:  # drop whichever name the output node was stored under
            self._points = {k: v for k, v in self._points.items() if v is not last}
        for p in list(self._points):
            try:
                shapes = [tuple(c.meta["tensor_meta"].shape[1:]) for c in self._crossing_nodes(p)]
            except _NotCuttable:
                del self._points[p]
                continue
            self._shapes[p] = shapes

    def _crossing_nodes(self, split: str, with_batch: bool = False):
        """Tensors computed up to ``split`` that later nodes use. The batch size
        (``x.size(0)``) may cross too: the cloud reads it off the received tensors, so it
        is returned separately (with ``with_batch``); any other non-tensor value crossing
        the cut makes the point unusable."""
        cut = self._order[self._points[split]]
        out, batch = [], []
        for n in self.nodes[: cut + 1]:
            if n.op == "get_attr" or not any(
                self._order.get(u, len(self.nodes)) > cut for u in n.users
            ):
                continue
            if "tensor_meta" in n.meta and hasattr(n.meta["tensor_meta"], "shape"):
                out.append(n)
            elif n.op == "call_method" and n.target == "size" and tuple(n.args[1:]) == (0,):
                batch.append(n)
            else:
                raise _NotCuttable(n.name)
        if not out:
            raise _NotCuttable(split)
        return (out, batch) if with_batch else out

    @property
    def split_points(self) -> list[str]:
        """Every point the model can be cut at, in execution order."""
        return list(self._points)

    def crossing(self, split: str) -> list[Crossing]:
        """The tensors that cross the cut after ``split`` (edge outputs, in order)."""
        self._check(split)
        names = [split] if not self.traced else [n.name for n in self._crossing_nodes(split)]
        return [Crossing(n, s) for n, s in zip(names, self._shapes[split], strict=True)]

    def _check(self, split: str) -> None:
        if split not in self._points:
            shown = ", ".join(self.split_points[:12]) + (
                ", ..." if len(self.split_points) > 12 else ""
            )
            raise UserError(
                f"model.split: unknown split point {split!r} for model {self.name!r} "
                f"(available: input, the cloud-only baseline; {shown}; "
                f"`dfsim models describe {self.name}` lists them all)"
            )

    def edge(self, split: str) -> nn.Module:
        """Images in, the tuple of tensors crossing the cut out."""
        self._check(split)
        if not self.traced:
            return _HookFront(self.module, self._modules[split])
        cut = self._order[self._points[split]]
        crossing = self._crossing_nodes(split)
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for n in self.nodes[: cut + 1]:
            env[n] = g.node_copy(n, lambda a: env[a])
        g.output(tuple(env[n] for n in crossing))
        return fx.GraphModule(self.gm, g).eval()

    def cloud(self, split: str) -> nn.Module:
        """The crossing tensors in (positional), the model's output out."""
        self._check(split)
        if not self.traced:
            return _HookBack(self.module, self._modules[split], self.input_shape)
        cut = self._order[self._points[split]]
        crossing, batch = self._crossing_nodes(split, with_batch=True)
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {n: g.placeholder(n.name) for n in crossing}
        for n in batch:  # the batch size, read off the first received tensor
            env[n] = g.call_method("size", (env[crossing[0]], 0))
        for n in self.nodes:
            if n in env:
                continue
            if self._order[n] > cut or n.op == "get_attr":
                env[n] = g.node_copy(n, lambda a: env[a])
        g.node_copy(self._output, lambda a: env[a])
        gm = fx.GraphModule(self.gm, g)
        gm.graph.eliminate_dead_code()  # get_attr nodes only the edge needed
        gm.recompile()
        return gm.eval()

    def full(self) -> nn.Module:
        """The whole module."""
        return self.module

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x C x H x W -> float32, ``(x/255 - mean) / std`` per channel."""
        x = images.astype(np.float32) / np.float32(255.0)
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return torch.from_numpy((x - mean) / std)

    # ------------------------------------------------------------------ hooks
    def _init_hooks(self, sample: torch.Tensor) -> None:
        self._modules = {}
        shapes = {}
        handles = []
        for qual, m in self.module.named_modules():
            if qual and qual.count(".") < 2:

                def hook(mod, inp, out, qual=qual):
                    if isinstance(out, torch.Tensor):
                        shapes.setdefault(qual, tuple(out.shape[1:]))

                handles.append(m.register_forward_hook(hook))
                self._modules[qual] = m
        with torch.no_grad():
            self.module(sample)
        for h in handles:
            h.remove()
        self._points = dict.fromkeys(shapes)
        self._modules = {q: self._modules[q] for q in shapes}
        self._shapes = {q: [s] for q, s in shapes.items()}

    # ------------------------------------------------------------------ describe
    def describe(self, repeats: int = 3) -> list[dict]:
        """Every split point: crossing tensors, values, and the edge's share of the time."""
        share = self._edge_time_share(repeats) if self.traced else {}
        rows = []
        for p in self.split_points:
            shapes = self._shapes[p]
            rows.append(
                {
                    "split": p,
                    "tensors": len(shapes),
                    "shapes": shapes,
                    "values": int(sum(np.prod(s) for s in shapes)),
                    "edge_share": share.get(p),
                }
            )
        return rows

    def _edge_time_share(self, repeats: int) -> dict[str, float]:
        times = np.zeros(len(self.nodes))

        class Timed(fx.Interpreter):
            def run_node(inner, n):
                t0 = time.perf_counter()
                out = super().run_node(n)
                if n.op != "output":
                    times[self._order[n]] += time.perf_counter() - t0
                return out

        x = torch.randn((4, *self.input_shape))
        with torch.no_grad():
            for _ in range(repeats):
                Timed(self.gm).run(x)
        total = times.sum() or 1.0
        cum = np.cumsum(times) / total
        return {p: float(cum[self._order[n]]) for p, n in self._points.items()}


class _HookFront(nn.Module):
    """Run the model until ``target`` has produced its output; return that output."""

    def __init__(self, model: nn.Module, target: nn.Module):
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x):
        box = {}

        def hook(mod, inp, out):
            box["out"] = out
            raise _StopForward

        h = self.target.register_forward_hook(hook)
        try:
            self.model(x)
        except _StopForward:
            pass
        finally:
            h.remove()
        return (box["out"],)


class _HookBack(nn.Module):
    """Run the model with ``target``'s output replaced by the received features."""

    def __init__(self, model: nn.Module, target: nn.Module, input_shape):
        super().__init__()
        self.model, self.target, self.input_shape = model, target, tuple(input_shape)

    def forward(self, feats):
        h = self.target.register_forward_hook(lambda mod, inp, out: feats)
        try:
            return self.model(torch.zeros((feats.shape[0], *self.input_shape), dtype=feats.dtype))
        finally:
            h.remove()


def weights_digest_of(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
