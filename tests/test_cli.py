"""The command line: demo, show-config, and running from a source checkout."""

import os
import pathlib
import subprocess
import sys

import pytest

import approxmat
from approxmat.__main__ import main


def test_show_config_command(capsys):
    assert main(["show-config"]) == 0
    assert capsys.readouterr().out.startswith(f"approxmat {approxmat.__version__}")


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_module_runs_from_a_source_checkout_layout(tmp_path):
    # A directory with an unbuilt approxmat/ first on sys.path (what `python -m approxmat`
    # from a checkout sees) must load the installed package instead.
    source = pathlib.Path(approxmat.__file__).parent
    fake = tmp_path / "approxmat"
    fake.mkdir()
    for name in ("__init__.py", "_source_tree.py"):
        (fake / name).write_text((source / name).read_text())
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "approxmat", "show-config"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"approxmat {approxmat.__version__}")
