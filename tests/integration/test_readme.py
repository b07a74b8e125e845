"""The README cannot rot: its quickstart runs here, as written, against a real cluster.

The shell blocks of the "Quickstart" section run in bash (``set -euo pipefail``) and the
Python blocks in a fresh interpreter, against a cluster the launcher starts on free
ports; the only change made to the text is the seed address (``127.0.0.1:7101`` becomes
the test cluster's). The two commands at the top of the README are checked to still
name ``cairn cluster up`` and the test suite, and ``cairn cluster up`` to exist.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.cluster.launcher import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

README_SEED = "127.0.0.1:7101"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELLS = {"bash", "sh", "shell", "console"}


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def blocks(text: str) -> list[tuple[str, str]]:
    return [(lang or "", body) for lang, body in FENCE.findall(text)]


@pytest.fixture(scope="module")
def readme(project_root) -> str:
    return (project_root / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("readme-cluster"), nodes=3) as running:
        yield running


def _env(seeds: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_SEEDS"] = seeds
    # The console script next to this interpreter, as `pip install` put it there.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _cairn_prelude() -> str:
    # If this interpreter has no `cairn` script (an unusual install), run the module.
    script = Path(sys.executable).parent / "cairn"
    if script.exists():
        return ""
    return f'cairn() {{ {shlex.quote(sys.executable)} -m cairn.cli "$@"; }}\n'


def test_the_top_commands_still_run_the_cluster_and_the_tests(readme):
    top = blocks(readme.split("\n## ", 1)[0])
    commands = [line for lang, body in top if lang in SHELLS for line in body.splitlines()]
    commands = [c for c in commands if c.strip() and not c.lstrip().startswith("#")]
    assert len(commands) == 2, commands
    assert commands[0].rstrip().endswith("&& cairn cluster up")
    assert commands[1].rstrip().endswith("&& python -m pytest")
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "cluster", "up", "--help"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"--data" in proc.stdout


def test_quickstart_shell_blocks(readme, cluster, tmp_path):
    shell = [body for lang, body in blocks(section(readme, "Quickstart")) if lang in SHELLS]
    assert shell, "the quickstart has no shell block"
    seeds = ",".join(cluster.seeds)
    for body in shell:
        script = "set -euo pipefail\n" + _cairn_prelude() + body.replace(README_SEED, seeds)
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=_env(seeds),
            capture_output=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, (
            f"README shell block failed ({proc.returncode}):\n{body}\n"
            f"stdout:\n{proc.stdout.decode()}\nstderr:\n{proc.stderr.decode()}"
        )


def test_quickstart_python_blocks(readme, cluster, tmp_path):
    python = [body for lang, body in blocks(section(readme, "Quickstart")) if lang == "python"]
    assert python, "the quickstart has no Python block"
    for body in python:
        assert README_SEED in body, "the block should use the documented seed"
        code = body.replace(README_SEED, cluster.seeds[0])
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=_env(",".join(cluster.seeds)),
            capture_output=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, (
            f"README Python block failed:\n{body}\nstderr:\n{proc.stderr.decode()}"
        )
