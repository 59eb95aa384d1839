"""Every command and code block in the README runs."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

README = (Path(__file__).parent.parent / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_block_runs(index):
    exec(compile(_blocks("python")[index], f"README python block {index}", "exec"), {})


def _cli_lines() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("fxprune "):
                lines.append(command)
    return lines


@pytest.mark.parametrize("command", _cli_lines())
def test_cli_line_runs(command, tmp_path):
    args = shlex.split(command)
    if "mypkg.nets:MyNet" in args:  # the README's example of a user's own class, written here
        (tmp_path / "mypkg").mkdir()
        (tmp_path / "mypkg" / "__init__.py").write_text("")
        (tmp_path / "mypkg" / "nets.py").write_text(
            "import torch\n"
            "class MyNet(torch.nn.Sequential):\n"
            "    def __init__(self, width=8):\n"
            "        super().__init__(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(width, 3, 3, padding=1))\n"
        )
    result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "groups:" in result.stdout


def test_readme_names_the_test_command_ci_runs():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "pytest -q" in _blocks("bash")[1]
    assert ci.strip().splitlines()[-1] == "pytest -q"


@pytest.mark.parametrize("index", range(len(_blocks("yaml"))))
def test_yaml_spec_block_is_valid_for_edsr(index):
    import torch

    import fxprune
    from fxprune.models import build
    from fxprune.selection import plan_keep

    spec = fxprune.Spec.from_yaml(_blocks("yaml")[index])
    graph = fxprune.analyze(build("edsr", blocks=2, channels=32).eval(), torch.randn(1, 3, 8, 8))
    assert plan_keep(graph, spec)
