"""A user's install: the built wheel, with every extra, in a clean virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_the_wheel_installs_with_its_extras_and_finds_keels_migrations(tmp_path: Path) -> None:
    """pip installs the wheel with postgres,pubsub,redis,otel; py.typed ships; `keel db` finds keel's branch."""
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, ROOT, cwd=tmp_path)
    (wheel,) = wheels.glob("keel_framework-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        f"{wheel}[postgres,pubsub,redis,otel]",
        cwd=tmp_path,
    )

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "PYTHON", "VIRTUAL_ENV"))}
    probe = (
        "import importlib.resources as r, keel, keel.orm, keel.ext\n"
        "root = r.files('keel')\n"
        "assert root.joinpath('py.typed').is_file()\n"
        "assert root.joinpath('infrastructure/database/migrations/environment/script.py.mako').is_file()\n"
        "import asyncpg, redis, google.cloud.pubsub_v1, opentelemetry.sdk\n"
        "print(keel.__file__)"
    )
    where = run(python, "-c", probe, cwd=tmp_path, env=clean)
    assert str(env_dir) in where  # the installed package, not the checkout

    service = tmp_path / "service"
    service.mkdir()
    cli_env = clean | {"KEEL_DATABASE__URL": f"sqlite+aiosqlite:///{service / 'app.db'}"}
    assert "keel_" in run(env_dir / "bin" / "keel", "db", "heads", cwd=service, env=cli_env)
    run(env_dir / "bin" / "keel", "db", "upgrade", cwd=service, env=cli_env)
    assert "(head)" in run(env_dir / "bin" / "keel", "db", "current", cwd=service, env=cli_env)
