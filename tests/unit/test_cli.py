"""The `keel` command line."""

from __future__ import annotations

import pytest

from keel import __version__
from keel.cli import main


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`keel --version` names the installed version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_without_arguments_it_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `keel` explains itself instead of failing."""
    assert main([]) == 0
    assert "usage: keel" in capsys.readouterr().out
