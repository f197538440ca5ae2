"""MkDocs build hook of dfsim's documentation site (``hooks:`` in mkdocs.yml).

* Generates ``reference/scenario.md`` with :func:`dfsim.tools.reference.scenario_reference`
  (every scenario key and registered component, from the registry's declarations).
* Generates the API reference: one page per public module of the ``dfsim`` package, found
  by walking the package's files (private modules, named ``_x``, are left out), each page a
  mkdocstrings ``::: module`` block, under ``reference/api/`` laid out like the package
  (``dfsim/codecs/raw.md``, a package's page its ``index.md``), and
  ``reference/api/index.md`` listing them by wing. The nav entry of
  ``reference/api/index.md`` becomes a section holding them all.
* Serves the repository's ``results/`` and ``benchmarks/`` folders at the same paths in
  the site (only figures, tables and text: png, svg, md, csv, txt, json), so a page links
  to a committed figure relatively, as if they were ``docs/results/...``. Their Markdown
  files become pages (``results/paper/README.md``, ``benchmarks/training.md``): links
  between them and to their figures must resolve like any page's; a link from one of them
  to a repository file the site does not carry (``../scenarios/x.yaml``, a ``.py`` file)
  is shown as that file's repository path in code, and a link to nothing at all is left
  for the strict build to report.

No page written by hand may sit where one of these is generated: that is an error.
"""

from __future__ import annotations

import ast
import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, InclusionLevel

PACKAGE = "dfsim"
SCENARIO_PAGE = "reference/scenario.md"
API_DIR = "reference/api"
API_INDEX = f"{API_DIR}/index.md"
SERVED_DIRS = ("results", "benchmarks")
SERVED_SUFFIXES = {".png", ".svg", ".md", ".csv", ".txt", ".json"}

# The root wing's line: the package's own docstring says what dfsim is, not what is beside it.
_ROOT_WING = "The contracts every wing shares, beside the package's `__init__`."

_root: Path | None = None  # the repository: the folder of mkdocs.yml


# --------------------------------------------------------------------------- the package
def public_modules(root: Path) -> list[str]:
    """Every public module of the package under ``root``, dotted, by wing (the modules
    beside the package's ``__init__`` first), each wing's package before its modules:
    ``dfsim``, ``dfsim.cache``, ..., ``dfsim.codecs``, ``dfsim.codecs.accounting``, ..."""
    out = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(p.startswith("_") for p in parts):  # private, __main__, dfsim._moved
            continue
        if not all(
            (root / Path(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))
        ):
            continue  # a script in a folder that is not a package
        out.append(".".join(parts))
    return sorted(out, key=lambda m: (_wing(root, m), m))


def _is_package(root: Path, module: str) -> bool:
    return (root / Path(*module.split(".")) / "__init__.py").is_file()


def _wing(root: Path, module: str) -> str:
    """The wing a module belongs to: its top-level sub-package (``dfsim.codecs``), or
    ``dfsim`` for the modules beside the package's ``__init__``."""
    parts = module.split(".")
    if len(parts) > 1 and _is_package(root, ".".join(parts[:2])):
        return ".".join(parts[:2])
    return PACKAGE


def _source(root: Path, module: str) -> Path:
    base = root / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def module_summary(root: Path, module: str) -> str:
    """The first sentence of a module's docstring, read without importing it."""
    doc = ast.get_docstring(ast.parse(_source(root, module).read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    m = re.search(r"[.!?](?=\s+[A-Z`(*])", first)
    text = re.sub(r":+$", ".", first[: m.end()] if m else first)  # "flows::" ends a sentence
    text = re.sub(r":[a-z]+:`~?([^`]*)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text) or "(no docstring)"


def api_page(module: str, root: Path) -> str:
    """The site path of a module's API page: ``reference/api/dfsim/codecs/raw.md``."""
    base = f"{API_DIR}/{module.replace('.', '/')}"
    return f"{base}/index.md" if _is_package(root, module) else f"{base}.md"


def api_page_text(module: str) -> str:
    return f"::: {module}\n"


def api_index_text(root: Path, modules: list[str]) -> str:
    """``reference/api/index.md``: the public modules by wing, each with its summary."""
    out = [
        "# API reference\n",
        "One page per public module of the `dfsim` package, generated from its docstrings "
        "(by mkdocstrings) each time the site is built, grouped by wing (the package's "
        "sub-packages). The keys of a scenario file are in the "
        "[scenario reference](../scenario.md).\n",
    ]
    wings: dict[str, list[str]] = {}
    for m in modules:
        wings.setdefault(_wing(root, m), []).append(m)
    for wing, members in wings.items():
        out.append(f"## `{wing}`\n")
        out.append(f"{_ROOT_WING if wing == PACKAGE else module_summary(root, wing)}\n")
        for m in members:
            link = posixpath.relpath(api_page(m, root), API_DIR)
            out.append(f"- [`{m}`]({link}): {module_summary(root, m)}")
        out.append("")
    return "\n".join(out)


def api_nav(root: Path, modules: list[str]) -> list:
    """The nav of the API reference: its index, then one section per wing (whose first
    page is the wing package's own), each module titled by its name within the wing."""
    wings: dict[str, list] = {}
    for m in modules:
        wing = _wing(root, m)
        title = m if m == wing else m.removeprefix(f"{wing}.")
        wings.setdefault(wing, []).append(
            api_page(m, root) if m == wing else {title: api_page(m, root)}
        )
    return [API_INDEX, *({wing: pages} for wing, pages in wings.items())]


def _expand_nav(nav, sub: list) -> bool:
    """Replace the nav entry of the API index by a section holding ``sub``."""
    if isinstance(nav, list):
        for i, item in enumerate(nav):
            if isinstance(item, dict) and len(item) == 1:
                ((title, value),) = item.items()
                if value == API_INDEX:
                    nav[i] = {title: sub}
                    return True
                if _expand_nav(value, sub):
                    return True
            elif item == API_INDEX:
                nav[i] = {"API reference": sub}
                return True
    return False


# --------------------------------------------------------------------------- hooks
def on_config(config):
    global _root
    _root = Path(config.config_file_path).resolve().parent
    if config.nav is not None:
        _expand_nav(config.nav, api_nav(_root, public_modules(_root)))
    # `mkdocs serve` rebuilds when they change (the scenario reference, made from the
    # imported package, shows a change to the code after a restart)
    for folder in (PACKAGE, *SERVED_DIRS):
        if (_root / folder).is_dir() and str(_root / folder) not in config.watch:
            config.watch.append(str(_root / folder))
    return config


def served_files(root: Path) -> list[Path]:
    """The files of ``results/`` and ``benchmarks/`` the site serves: figures, tables and
    text, outside hidden folders (a run's ``.partial/``)."""
    out = []
    for folder in SERVED_DIRS:
        for path in sorted((root / folder).rglob("*")):
            hidden = any(p.startswith(".") for p in path.relative_to(root).parts)
            if path.is_file() and path.suffix.lower() in SERVED_SUFFIXES and not hidden:
                out.append(path)
    return out


def _add(files, file: File) -> None:
    if files.get_file_from_path(file.src_uri) is not None:
        raise PluginError(
            f"docs/{file.src_uri} is generated by the build (docs/_hooks/dfsim_site.py): "
            "remove the hand-written file"
        )
    files.append(file)


def on_files(files, config):
    from dfsim.tools.reference import scenario_reference

    _add(files, File.generated(config, SCENARIO_PAGE, content=scenario_reference()))
    modules = public_modules(_root)
    _add(files, File.generated(config, API_INDEX, content=api_index_text(_root, modules)))
    for m in modules:
        _add(files, File.generated(config, api_page(m, _root), content=api_page_text(m)))
    for path in served_files(_root):
        rel = path.relative_to(_root).as_posix()
        md = path.suffix == ".md"  # a page, reached by links only
        inclusion = InclusionLevel.NOT_IN_NAV if md else InclusionLevel.UNDEFINED
        _add(files, File.generated(config, rel, abs_src_path=str(path), inclusion=inclusion))
    return files


_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def on_page_markdown(markdown, page, config, files):
    """In a page from ``results/`` or ``benchmarks/``, a link to a repository file the site
    does not carry becomes that file's repository path, in code."""
    src = page.file.src_uri
    if not src.startswith(tuple(f"{d}/" for d in SERVED_DIRS)):
        return markdown

    def fix(m):
        bang, text, target = m.groups()
        if bang or re.match(r"[a-z][a-z0-9+.-]*:|#|/", target):
            return m.group(0)  # an image, a URL, an anchor or an absolute path: as it is
        path = target.split("#", 1)[0]
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(src), path))
        if rel.startswith("..") or files.get_file_from_path(rel) or not (_root / rel).exists():
            return m.group(0)  # on the site, or nowhere: strict mode judges it
        if text.strip("`") in (path, rel, posixpath.basename(rel)):
            return f"`{rel}`"
        return f"{text} (`{rel}`)"

    return _LINK.sub(fix, markdown)
