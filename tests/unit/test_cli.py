"""The `keel` command line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from keel import __version__
from keel.cli import cli, main


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`keel --version` names the installed version and exits 0."""
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_without_arguments_it_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `keel` explains itself instead of failing."""
    assert main([]) == 0
    assert "Usage: keel" in capsys.readouterr().out


def test_an_unknown_command_is_refused_with_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A typo is exit code 2 with Click's usage message, not a traceback."""
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_help_is_available_as_dash_h() -> None:
    """`keel -h` is `keel --help`."""
    result = CliRunner().invoke(cli, ["-h"])
    assert result.exit_code == 0
    assert "Usage: keel" in result.output
