"""Every command and code block in the README runs."""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Iterator

import pytest

from cli_checks import in_process

README = (Path(__file__).parent.parent / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write files
    exec(compile(_blocks("python")[index], f"README python block {index}", "exec"), {})


def _is_routing(block: str) -> bool:
    return re.search(r"^variants:", block, flags=re.M) is not None


SPEC_BLOCKS = [b for b in _blocks("yaml") if not _is_routing(b)]
ROUTING_BLOCKS = [b for b in _blocks("yaml") if _is_routing(b)]


def _cli_lines() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("fxprune "):
                lines.append(command)
    return lines


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all README command lines, in order (``export`` reads what ``compress`` wrote)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("readme")
    (folder / "mypkg").mkdir()
    (folder / "mypkg" / "__init__.py").write_text("")
    (folder / "mypkg" / "nets.py").write_text(  # the README's example of a user's own class
        "import torch\n"
        "class MyNet(torch.nn.Sequential):\n"
        "    def __init__(self, width=8):\n"
        "        super().__init__(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(width, 3, 3, padding=1))\n"
    )
    (folder / "spec.yaml").write_text(SPEC_BLOCKS[0])
    # the README's routing spec with a short estimator run and two small held-out images (the whole-image
    # comparison and the report time every model on them), so the route command stays quick here
    (folder / "val").mkdir()
    for i, image in enumerate((data.chelsea()[100:196, 150:246], data.coffee()[150:246, 200:296])):
        Image.fromarray(np.ascontiguousarray(image)).save(folder / "val" / f"{i}.png")
    (folder / "variants.yaml").write_text(re.sub(r"^(patch|estimator|train):.*$", "", ROUTING_BLOCKS[0], flags=re.M)
                                          + "patch: 16\nestimator: {steps: 20, windows: 64, held_out: 32, val_data: val}\n")
    Image.fromarray(np.ascontiguousarray(data.astronaut()[100:180, 150:250])).save(folder / "in.png")
    return folder


# The README line run by the real ``fxprune`` executable (the user's own class, found through the folder
# the command runs in); the others run the same ``fxprune.cli.main`` in this process (a subprocess costs
# ~4 s of imports, and each would build the ONNX exporter's tables again). The executable's exit
# statuses, signals and terminal output are the subject of test_cli*.py.
REAL_EXECUTABLE = "fxprune analyze mypkg.nets:MyNet"


@contextlib.contextmanager
def _as_a_process_would(folder: Path, monkeypatch) -> Iterator[None]:
    """Run ``main`` as the subprocess did (cwd ``folder``, ``folder`` on the path as PYTHONPATH put it)
    and restore what a command changes for the rest of the process beyond what ``cli_checks.in_process``
    restores (threads, random states): warning filters, the user's modules imported from ``folder``;
    the SIGINT/SIGTERM handlers must be back as they were."""
    import signal

    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with warnings.catch_warnings():
            yield
    finally:
        for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
            del sys.modules[name]
    for number, handler in handlers.items():
        assert signal.getsignal(number) is handler, f"the command left signal {number}'s handler changed"


@pytest.mark.parametrize("command", _cli_lines())
def test_cli_line_runs(command, workdir, monkeypatch):
    if command.startswith(REAL_EXECUTABLE):
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, cwd=workdir, timeout=600,
                                env={**os.environ, "PYTHONPATH": str(workdir)})
    else:
        with _as_a_process_would(workdir, monkeypatch):
            result = in_process(*shlex.split(command)[1:])
    assert result.returncode == 0, result.stderr
    if command.startswith("fxprune analyze"):
        assert "groups:" in result.stdout


def test_one_readme_line_runs_the_real_executable():
    assert sum(line.startswith(REAL_EXECUTABLE) for line in _cli_lines()) == 1


def test_every_cli_command_appears_in_the_readme_and_the_demo_is_tested():
    from fxprune.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    shown = {line.split()[1] for line in _cli_lines()} | {"demo"}
    assert set(commands) <= shown
    assert "fxprune demo" in _blocks("bash")[0]
    assert "def test_demo_runs_end_to_end" in (Path(__file__).parent / "test_cli_interrupt.py").read_text()


def test_readme_names_the_test_command_ci_runs():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "pytest -q" in _blocks("bash")[1]
    assert ci.strip().splitlines()[-1] == "pytest -q"


@pytest.mark.parametrize("index", range(len(ROUTING_BLOCKS)))
def test_yaml_routing_block_is_valid(index, tmp_path):
    from fxprune.cli.route import load_routing_spec

    path = tmp_path / "variants.yaml"
    path.write_text(ROUTING_BLOCKS[index])
    assert load_routing_spec(str(path))["variants"]


@pytest.mark.parametrize("index", range(len(SPEC_BLOCKS)))
def test_yaml_spec_block_is_valid_for_edsr(index):
    import torch

    import fxprune
    from fxprune.models import build
    from fxprune.selection import plan_keep

    spec = fxprune.Spec.from_yaml(SPEC_BLOCKS[index])
    graph = fxprune.analyze(build("edsr", blocks=2, channels=32).eval(), torch.randn(1, 3, 8, 8))
    assert plan_keep(graph, spec)


def test_readme_numbers_are_the_benchmarks_own_lines():
    """The README's measured figures are copied from RESULTS.md by benchmarks/readme_numbers.py;
    a hand edit of either side (or a rerun without the copy) makes the block stale."""
    script = Path(__file__).parent.parent / "benchmarks" / "readme_numbers.py"
    done = subprocess.run(["python", str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, "run python benchmarks/readme_numbers.py (the README block is stale)"
