"""The documentation site (mkdocs.yml): a strict offline build, and what the build hook
generates (docs/_hooks/): the scenario reference names every registered component and
parameter, every public module has an API page, and committed figures are reachable."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dfsim import registry
from dfsim.errors import UserError
from dfsim.experiment.scenario import parse_scenario
from dfsim.registry import KINDS
from dfsim.tools.reference import anchor, scenario_reference

ROOT = Path(__file__).resolve().parents[1]


def _public_modules() -> list[str]:
    out = []
    for path in (ROOT / "dfsim").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        in_packages = all(
            (ROOT / Path(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))
        )
        if in_packages and not any(p.startswith("_") for p in parts):
            out.append(".".join(parts))
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once with ``mkdocs build --strict``: any warning (a broken link, a
    missing page, an unresolved cross-reference) fails it. No network: a proxy that
    refuses every connection stands in for one."""
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        **dict.fromkeys(("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"),
                        "http://127.0.0.1:9"),
    }  # fmt: skip
    done = subprocess.run(
        # no --quiet: it silences the warnings that --strict counts, and the build passes
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert done.returncode == 0 and not warnings, f"mkdocs build --strict:\n{done.stderr[-6000:]}"
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


@pytest.mark.slow  # the strict build: tens of seconds
def test_site_builds_strict_with_every_generated_page(site):
    assert (site / "index.html").is_file()
    assert (site / "reference" / "scenario" / "index.html").is_file()
    assert (site / "reference" / "api" / "index.html").is_file()
    for module in _public_modules():
        page = site / "reference" / "api" / Path(*module.split(".")) / "index.html"
        assert page.is_file(), f"no API page for {module}"
        assert f'id="{module}"' in page.read_text(encoding="utf-8"), module
    index = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "dfsim/_moved" not in index and "dfsim._moved" not in index


def _sections(markdown: str) -> dict[str, str]:
    """Each ``### ... { #id }`` section of the reference, by its id."""
    parts = re.split(r"^#{2,3} .*\{ #([a-z0-9-]+) \}$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_scenario_reference_names_every_component_and_parameter():
    sections = _sections(scenario_reference())
    for kind in KINDS:
        for name in registry.names(kind):
            section = sections.get(anchor(kind, name))
            assert section is not None, f"the reference misses the {kind} {name!r}"
            for param in registry.entry(kind, name).params:
                assert f"| `{param}`" in section, f"{kind} {name!r} misses {param!r}"


def _allowed(raw: dict) -> list[str]:
    """The keys the loader allows where ``raw`` puts an unknown key, from its error."""
    smallest = {"channels": [{"kind": "iid", "loss_rate": 0.0}], "methods": ["zeros"]}
    with pytest.raises(UserError) as err:
        parse_scenario({**smallest, **raw})
    return re.search(r"\((?:allowed here|its parameters): ([^)]*)\)", str(err.value))[1].split(", ")


def test_scenario_reference_lists_every_key_the_loader_allows():
    """Asked for an unknown key, the loader lists the keys it allows: each is on the page,
    in the section it belongs to."""
    sections = _sections(scenario_reference())
    for key in _allowed({"zz": 1}):
        assert (
            f"| `{key}`" in sections["top-level"] or f"section-{key}".replace("_", "-") in sections
        ), key
    for where, raw in (
        ("network", {"network": {"zz": 1}}),
        ("network", {"network": {"side_info": {"zz": 1}}}),
        ("packets", {"packets": {"zz": 1}}),
        ("model", {"model": {"import": "a:b", "zz": 1}}),
    ):
        section = sections[f"section-{where}"]
        for key in _allowed(raw):
            assert f"`{key}`" in section, f"{where}.{key} is not in the reference"


@pytest.mark.slow
def test_scenario_reference_on_the_site(site):
    page = (site / "reference" / "scenario" / "index.html").read_text(encoding="utf-8")
    for kind in KINDS:
        for name in registry.names(kind):
            assert f'id="{anchor(kind, name)}"' in page, (kind, name)


def _links(page: Path) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#?]+)', page.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_pages_link_to_the_committed_figures(site):
    """Every link from a page into results/ or benchmarks/ reaches the committed file (or
    the page made of a committed Markdown file), and the pages the hook serves from there
    (results/paper/README.md) show committed figures."""
    root = site.resolve()
    shown_by = {"hand-written": 0, "served": 0}
    for page in root.rglob("*.html"):
        served = page.relative_to(root).parts[0] in ("results", "benchmarks")
        for link in _links(page):
            target = (page.parent / link).resolve()
            if "://" in link or not target.is_relative_to(root):
                continue
            rel = target.relative_to(root)
            if rel.parts[:1] not in (("results",), ("benchmarks",)):
                continue
            if target.is_dir():
                assert (target / "index.html").is_file(), f"{page} links to missing {rel}/"
                continue
            assert target.is_file(), f"{page.relative_to(root)} links to missing {rel}"
            if target.suffix in (".png", ".svg"):
                assert target.read_bytes() == (ROOT / rel).read_bytes(), rel
                shown_by["served" if served else "hand-written"] += 1
    assert shown_by["served"] > 0, "no page served from results/ shows its figures"
    assert shown_by["hand-written"] > 0, "no page of docs/ shows a committed figure"


def _hook():
    spec = importlib.util.spec_from_file_location("dfsim_site", ROOT / "docs/_hooks/dfsim_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._root = ROOT
    return module


def test_links_to_files_the_site_does_not_serve_become_repository_paths():
    hook = _hook()
    served = {"results/default/summary.md", "benchmarks/model.txt"}
    files = SimpleNamespace(get_file_from_path=lambda uri: uri if uri in served else None)
    page = SimpleNamespace(file=SimpleNamespace(src_uri="results/default/notes.md"))
    text = (
        "[the scenario](../../scenarios/default.yaml), [`dfsim/stages.py`](../../dfsim/stages.py), "
        "[summary](summary.md), [timings](../../benchmarks/model.txt), "
        "![figure](accuracy_vs_loss.png), [typo](../../scenarios/nowhere.yaml)"
    )
    assert hook.on_page_markdown(text, page, None, files) == (
        "the scenario (`scenarios/default.yaml`), `dfsim/stages.py`, "
        "[summary](summary.md), [timings](../../benchmarks/model.txt), "
        "![figure](accuracy_vs_loss.png), [typo](../../scenarios/nowhere.yaml)"
    )
    other = SimpleNamespace(file=SimpleNamespace(src_uri="guide/scenarios.md"))
    assert hook.on_page_markdown(text, other, None, files) == text  # hand-written: as is


def test_every_public_module_is_walked():
    assert sorted(_hook().public_modules(ROOT)) == sorted(_public_modules())
