"""Every ```python block in docs/*.md runs, page by page, as one script.

Blocks fenced as ```python are executed in order in a fresh namespace per page
(so a page can build its example step by step); use ```pycon, ```text or
```py-no-run for code that must not run (fragments, shell sessions). Pages run
on SQLite in a temporary directory, so they may create files freely.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", [p for p in DOCS if python_blocks(p)], ids=lambda p: p.name)
def test_docs_page_examples_run(page: Path, tmp_path: Path) -> None:
    """The page's python blocks, run top to bottom in a subprocess, exit 0."""
    script = tmp_path / f"{page.stem}.py"
    script.write_text("\n\n".join(python_blocks(page)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/docs.db"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{page.name} failed:\n{result.stdout}\n{result.stderr}"
