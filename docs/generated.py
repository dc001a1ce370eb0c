"""What every generator in docs/ does with its text: write the file, or with `--check` say
whether the committed file is already that text (the tests run the check)."""

from __future__ import annotations

from pathlib import Path


def write_or_check(target: Path, text: str, argv: list[str], script: str, note: str = "") -> int:
    name = f"{target.parent.name}/{target.name}"
    if "--check" in argv:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{name} is stale: run python {script}")
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {name}{note}")
    return 0
