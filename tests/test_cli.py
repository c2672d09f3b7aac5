"""The command line as a whole: version, help completeness, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from eid import __version__
from eid.cli import app

EXPECTED_COMMANDS = {
    "synth",
    "dehaze",
    "evaluate",
    "train-operator",
    "train",
    "demo",
    "data",
    "models",
}


def _commands(group, prefix=""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if hasattr(command, "commands"):
            yield from _commands(command, prefix=f"{prefix}{name} ")


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"eid {__version__}"


def test_every_command_and_option_is_documented():
    root = typer.main.get_command(app)
    names = dict(_commands(root))
    assert EXPECTED_COMMANDS <= set(names)
    for name, command in names.items():
        assert (command.help or "").strip(), f"`eid {name}` has no help text"
        for param in command.params:
            assert (getattr(param, "help", None) or "").strip(), (
                f"`eid {name}` option {param.name} has no help"
            )
        result = CliRunner().invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, result.output


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from eid.cli import main; main()",
            "evaluate",
            "--pred",
            str(tmp_path / "missing"),
            "--ref",
            str(tmp_path),
            "--metrics",
            "psnr",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing" in lines[0]


def test_shell_completion_script_is_offered(eid_cli, monkeypatch):
    """``eid --show-completion`` prints a completion script for the shell (bash here) that names the command.

    typer finds the shell in the process tree (shellingham), which a background job or CI runner may lack: the
    test says it is bash rather than depend on how pytest was started."""
    import shellingham

    monkeypatch.setenv("SHELL", "/bin/bash")
    monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: ("bash", "/bin/bash"))
    run = eid_cli("--show-completion", "bash")
    assert run.code == 0 and "complete" in run.out and "eid" in run.out


def test_error_lines_keep_square_brackets(eid_cli, tmp_path):
    """Rich markup must not eat ``[...]`` in an error line (a folder name, an extra like ``eid-dehaze[export]``)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"")  # an input, so the missing model is the error
    run = eid_cli(
        "dehaze", "--model", tmp_path / "run[export]", tmp_path / "in", "--out", tmp_path / "out"
    )
    assert run.code == 2 and "run[export]" in run.err and "Traceback" not in run.err
