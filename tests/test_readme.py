"""The README is the front door: every relative link and image in it resolves to a file
tracked in git, so a fresh clone shows what the README shows."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.splitlines())


def test_every_relative_link_and_image_in_the_readme_is_tracked():
    files = tracked()
    dirs = {str(Path(f).parent) for f in files} | {str(p) for f in files for p in Path(f).parents}
    targets = [t.split("#")[0] for t in LINK.findall((ROOT / "README.md").read_text())]
    relative = [
        t.rstrip("/") for t in targets if t and "://" not in t and not t.startswith("mailto:")
    ]
    assert relative, "the README links to nothing in the repository"
    missing = [t for t in relative if t not in files and t not in dirs]
    assert not missing, f"README links to untracked or missing paths: {missing}"
