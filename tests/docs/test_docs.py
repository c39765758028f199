"""Every runnable block in docs/*.md runs, page by page, as one script.

Three kinds of fenced block run, in page order, in one temporary directory:

- ```` ```python ````: executed in one namespace per page (so a page can build
  its example step by step);
- ```` ```bash run ```` (or ``sh run``): a shell step, run with ``bash -eu -o
  pipefail`` and the virtualenv's ``bin`` first on ``PATH``, as a reader's
  terminal would (``alembic``, ``pytest`` ... are the project's);
- ```` ```<lang> file=<path> ````: the block's text is written to ``<path>``
  (a file the page tells the reader to create, such as an ``env.py``).

Anything else (```` ```pycon ````, ```` ```text ````, ```` ```py-no-run ````,
plain ```` ```bash ````) is for reading only. Pages run on SQLite; a page
holding ``<!-- docs-test: postgresql -->`` also runs on a fresh PostgreSQL
database (its blocks must then be backend-neutral).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_TARGET = re.compile(r"^\S+\s+file=(\S+)$")
POSTGRES_MARK = "<!-- docs-test: postgresql -->"

# Runs the shell steps for the page script; reports the step's output when it fails.
PRELUDE = """
import subprocess as _docs_subprocess
import sys as _docs_sys
from pathlib import Path as _DocsPath


def _docs_shell(script: str) -> None:
    result = _docs_subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=120
    )
    print(result.stdout, end="")
    print(result.stderr, end="", file=_docs_sys.stderr)
    if result.returncode != 0:
        raise SystemExit(f"shell step failed (exit {result.returncode}):\\n{script}")


def _docs_write(path: str, text: str) -> None:
    _DocsPath(path).parent.mkdir(parents=True, exist_ok=True)
    _DocsPath(path).write_text(text, encoding="utf-8")
"""


@dataclass(frozen=True)
class Block:
    kind: str  # "python", "shell" or "file"
    text: str
    target: str = ""

    def as_python(self) -> str:
        if self.kind == "shell":
            return f"_docs_shell({self.text!r})"
        if self.kind == "file":
            return f"_docs_write({self.target!r}, {self.text!r})"
        return self.text


def runnable_blocks(page: Path) -> list[Block]:
    blocks = []
    for info, text in FENCE.findall(page.read_text(encoding="utf-8")):
        info = info.strip()
        if info == "python":
            blocks.append(Block("python", text))
        elif info in ("bash run", "sh run"):
            blocks.append(Block("shell", text))
        elif target := FILE_TARGET.match(info):
            blocks.append(Block("file", text, target.group(1)))
    return blocks


def page_script(page: Path) -> str:
    blocks = runnable_blocks(page)
    # Only pages with shell or file steps get the prelude: a page of python
    # blocks may start with `from __future__ import ...`, which must come first.
    prelude = [PRELUDE] if any(block.kind != "python" for block in blocks) else []
    return "\n\n".join([*prelude, *(block.as_python() for block in blocks)])


def cases() -> Iterator[object]:
    for page in DOCS:
        if not runnable_blocks(page):
            continue
        yield pytest.param(page, "sqlite", id=f"{page.name}-sqlite")
        if POSTGRES_MARK in page.read_text(encoding="utf-8"):
            yield pytest.param(page, "postgresql", id=f"{page.name}-postgresql", marks=pytest.mark.postgres)


@pytest.fixture
def page_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the page's own: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/docs.db"
        return
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    try:
        yield str(url)
    finally:
        drop_postgres_database(name)


def run_page(page: Path, directory: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    script = directory / f"_{page.stem}_page.py"
    script.write_text(page_script(page), encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "KEEL_DATABASE__URL": database_url,
    }
    return subprocess.run(
        [sys.executable, str(script)], cwd=directory, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(("page", "page_database_url"), list(cases()), indirect=["page_database_url"])
def test_docs_page_examples_run(page: Path, page_database_url: str, tmp_path: Path) -> None:
    """The page's python, shell and file blocks, run top to bottom in an empty directory, exit 0."""
    result = run_page(page, tmp_path, page_database_url)
    assert result.returncode == 0, f"{page.name} failed:\n{result.stdout}\n{result.stderr}"


def test_shell_steps_run_in_page_order_with_the_virtualenv_first_on_path(tmp_path: Path) -> None:
    """A page's shell step sees the files its earlier blocks wrote and runs the venv's tools."""
    page = tmp_path / "page.md"
    page.write_text(
        "```text file=notes/a.txt\nhello\n```\n\n"
        "```bash run\ncat notes/a.txt > b.txt\ncommand -v python > which.txt\n```\n\n"
        "```python\nfrom pathlib import Path\nassert Path('b.txt').read_text() == 'hello\\n'\n```\n\n"
        "```bash\nexit 1  # for reading only\n```\n",
        encoding="utf-8",
    )
    result = run_page(page, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/docs.db")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "which.txt").read_text().strip() == str(Path(sys.executable).parent / "python")


def test_a_failing_shell_step_fails_the_page(tmp_path: Path) -> None:
    """A shell step that exits non-zero stops the page with the step's output."""
    page = tmp_path / "page.md"
    page.write_text("```bash run\necho 'about to fail' >&2\nfalse\necho unreachable\n```\n", encoding="utf-8")
    result = run_page(page, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/docs.db")
    assert result.returncode != 0
    assert "about to fail" in result.stderr
    assert "unreachable" not in result.stdout
