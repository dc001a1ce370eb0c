"""The docs stay true to the code: the configuration reference is generated from the config
object and lists every variable, the architecture diagram renders from its committed source,
and every relative link in docs/ resolves. No Redis or Postgres needed."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import fields
from pathlib import Path
from types import ModuleType

import pytest

from engine.config import Config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG_MD = DOCS / "CONFIG.md"
MMD = DOCS / "architecture.mmd"
SVG = DOCS / "architecture.svg"
SVG_NS = "{http://www.w3.org/2000/svg}"

# Mermaid node definitions (`id[...]`, `id(...)`, `id[(...)]`, `id([...])`) and edges
# (`a --> b`, `a -.-> b`, optionally labelled `-->|text|`), one per line.
NODE = re.compile(r"^\s*(\w+)\s*[\[(]", re.MULTILINE)
EDGE = re.compile(r"^\s*(\w+)\s*-\.?->\s*(?:\|[^|]*\|)?\s*(\w+)\s*$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_config", DOCS / "generate_config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nodes_and_edges(source: str) -> tuple[set[str], set[tuple[str, str]]]:
    return set(NODE.findall(source)), set(EDGE.findall(source))


def _svg_ids(root: ET.Element) -> set[str]:
    return {el.get("id", "") for el in root.iter()} - {""}


def _has_id(ids: set[str], pattern: str) -> bool:
    return any(re.search(pattern + "$", i) for i in ids)


def _check_svg(path: Path) -> None:
    """A well-formed SVG with a drawing area, the main names, and every node and edge of the
    Mermaid source (Mermaid's ids: `<svg>-flowchart-<node>-<n>`, `<svg>-L_<from>_<to>_<n>`)."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG_NS}svg", root.tag
    width, height = (float(v) for v in root.get("viewBox", "0 0 0 0").split()[2:])
    assert width > 100 and height > 100, root.get("viewBox")
    text = " ".join(" ".join(root.itertext()).split())
    for name in ("Redis", "Postgres", "persister", "outbox", "inflight", "API", "epoch"):
        assert name in text, f"{name!r} is not drawn in {path.name}"
    ids = _svg_ids(root)
    nodes, edges = _nodes_and_edges(MMD.read_text())
    assert nodes and edges
    missing_nodes = [n for n in nodes if not _has_id(ids, rf"-flowchart-{n}-\d+")]
    missing_edges = [e for e in edges if not _has_id(ids, rf"-L_{e[0]}_{e[1]}_\d+")]
    assert not missing_nodes, f"{path.name} lacks nodes of architecture.mmd: {missing_nodes}"
    assert not missing_edges, f"{path.name} lacks edges of architecture.mmd: {missing_edges}"


# -- (a), (b): the configuration reference ---------------------------------------------------


def test_every_config_variable_is_in_the_reference() -> None:
    reference = CONFIG_MD.read_text()
    missing = [s.env for s in Config.reference() if f"`{s.env}`" not in reference]
    assert not missing, f"docs/CONFIG.md lacks {missing}: run python docs/generate_config.py"
    unnamed = [f.name for f in fields(Config) if f"`{f.name}`" not in reference]
    assert not unnamed, f"docs/CONFIG.md lacks fields {unnamed}"


def test_config_reference_is_what_the_generator_writes() -> None:
    generator = _generator()
    assert CONFIG_MD.read_text() == generator.render(), (
        "docs/CONFIG.md is stale: run python docs/generate_config.py"
    )
    assert len(generator.rows()) == len(Config.reference()) == len(fields(Config))


def test_generator_check_mode_agrees() -> None:
    assert _generator().main(["--check"]) == 0


# -- (c): the diagram ----------------------------------------------------------------------


def test_architecture_page_embeds_the_diagram_source() -> None:
    page = (DOCS / "ARCHITECTURE.md").read_text()
    blocks = re.findall(r"^```mermaid\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    assert blocks == [MMD.read_text()], "the mermaid block of ARCHITECTURE.md != architecture.mmd"


def test_committed_svg_is_the_rendered_diagram() -> None:
    assert SVG.exists(), "docs/architecture.svg is missing: run bash docs/render_diagram.sh"
    _check_svg(SVG)


def _mermaid_cli() -> Path | None:
    mmdc = Path(os.environ.get("MMDC_PREFIX", "/tmp/mmdc")) / "node_modules" / ".bin" / "mmdc"
    browser = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    return mmdc if mmdc.exists() and browser else None


@pytest.mark.timeout(120)
def test_diagram_source_renders(tmp_path: Path) -> None:
    """Re-render the source with mermaid-cli (skipped where it or Chromium is absent)."""
    if _mermaid_cli() is None:
        pytest.skip("mermaid-cli (MMDC_PREFIX, default /tmp/mmdc) or chromium is not installed")
    out = tmp_path / "architecture.svg"
    done = subprocess.run(
        ["bash", str(DOCS / "render_diagram.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    _check_svg(out)


def test_committed_svg_renders_outside_a_browser(tmp_path: Path) -> None:
    """librsvg draws the SVG (labels are SVG text, not HTML): skipped without rsvg-convert."""
    rsvg = shutil.which("rsvg-convert")
    if rsvg is None:
        pytest.skip("rsvg-convert is not installed (Debian: librsvg2-bin)")
    png = tmp_path / "architecture.png"
    done = subprocess.run(
        [rsvg, str(SVG), "-o", str(png)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- (d): links ----------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


def _links() -> list[tuple[Path, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for target in LINK.findall(FENCE.sub("", page.read_text())):
            if "://" not in target and not target.startswith("mailto:"):
                found.append((page, target))
    return found


def test_docs_have_pages_and_links() -> None:
    pages = {p.name for p in DOCS.glob("*.md")}
    assert {"README.md", "ARCHITECTURE.md", "RUNBOOK.md", "CONFIG.md", "MIGRATING.md"} <= pages
    assert len(_links()) > 10


def test_every_relative_link_in_docs_resolves() -> None:
    broken = []
    for page, target in _links():
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
