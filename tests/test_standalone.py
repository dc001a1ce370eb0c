"""The repository stands alone: a clone without `../shared` has its contract (docs/DESIGN.md),
and the README and docs link only to files inside the repository."""

from __future__ import annotations

from pathlib import Path

from tests.test_docs import DOCS, FENCE, LINK, ROOT, _anchors

PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _relative_links(page: Path) -> list[str]:
    targets = LINK.findall(FENCE.sub("", page.read_text()))
    return [t for t in targets if "://" not in t and not t.startswith("mailto:")]


def test_the_design_contract_is_in_the_repo():
    design = (DOCS / "DESIGN.md").read_text()
    for section in ("## 2. The API", "## 5. Invariants", "## 6. Performance", "## 7. Embedded"):
        assert section in design


def test_no_page_sends_readers_to_a_contract_outside_the_repo():
    outside = [p.name for p in PAGES if "shared/DESIGN.md" in p.read_text()]
    assert not outside, f"these pages name ../shared/DESIGN.md, which a clone lacks: {outside}"


def test_every_link_of_readme_and_docs_resolves_inside_the_repo():
    broken = []
    for page in PAGES:
        for target in _relative_links(page):
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{page.name}: {target} (no such file in the repo)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "links:\n" + "\n".join(broken)
