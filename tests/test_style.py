"""Code style and structure: ruff (configured in pyproject.toml) passes, the package has no
import cycle, and the stage modules import nothing from the layers above them."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dfsim"


def test_ruff_passes():
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "dfsim", "tests", "benchmarks", "docs/_hooks"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def module_imports(nested: bool = False) -> dict[str, set[str]]:
    """For every dfsim module, the dfsim modules it imports at module level (``nested``:
    also inside functions and ``TYPE_CHECKING`` blocks)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if nested else tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dfsim"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("dfsim")}
        graph[name] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_no_import_cycle():
    graph = module_imports(nested=True)  # imports inside functions count too
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                cycle = path[path.index(d) :] + [d] if d in path else [m, d]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_stages_do_not_import_the_layers_above():
    """The pipeline's wings (and the contracts they share) never reach up into the run
    machinery or the tools."""
    graph = module_imports(nested=True)
    above = ("dfsim.experiment", "dfsim.tools", "dfsim.testing")
    below = ("models", "data", "codecs", "transport", "completion", "tasks")
    core = ("stages", "registry", "cache", "errors", "limits", "devices", "reproducibility")
    for m, deps in graph.items():
        if m.count(".") and m.split(".")[1] in below + core:
            bad = {d for d in deps if d.startswith(above)}
            assert not bad, f"{m} imports {bad}"


LONG_FUNCTION = 80  # lines
LONG_MODULE = 600  # lines


def test_functions_are_short_or_say_why():
    """A function over LONG_FUNCTION lines states why in a comment starting ``# Long:``."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = lines[node.lineno - 1 : node.end_lineno]
                reason = any(line.strip().startswith("# Long:") for line in body)
                if len(body) > LONG_FUNCTION and not reason:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({len(body)})")
    assert not long, "functions over 80 lines without a '# Long:' reason: " + ", ".join(long)


def test_modules_stay_readable_in_one_sitting():
    big = [
        f"{p.relative_to(ROOT)} ({n})"
        for p in sorted(PACKAGE.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > LONG_MODULE
    ]
    assert not big, f"modules over {LONG_MODULE} lines: {big}"
