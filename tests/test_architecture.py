"""The import contracts in pyproject.toml hold, and a forbidden import breaks them.

`make test` runs `lint-imports` on the real tree; these tests prove the check
has teeth: each plants one forbidden import in a copy of the tree and expects
the tool to fail naming that import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ROOT_PACKAGES = ("app_pages", "cli_commands", "models", "utils", "testkit")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _copy_tree(target: Path) -> Path:
    for package in ROOT_PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _plant(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_real_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "named"),
    [
        ("utils.logging_setup", "import streamlit", "utils.logging_setup -> streamlit"),
        ("models.config", "import utils.bench.runner", "models.config -> utils.bench.runner"),
        ("utils.errors", "import models.registry", "utils.errors -> models.registry"),
        ("utils.ocr.pipeline", "import app_pages.ocr", "utils.ocr.pipeline -> app_pages.ocr"),
        ("utils.chat.service", "import utils.ocr.pipeline", "utils.chat.service -> utils.ocr"),
        ("models.config", "import models.registry", "models.config -> models.registry"),
        ("utils.bench.metrics", "import testkit.render", "utils.bench.metrics -> testkit"),
    ],
)
def test_a_forbidden_import_fails_the_check_and_is_named(
    tmp_path: Path, module: str, line: str, named: str
) -> None:
    tree = _copy_tree(tmp_path)
    _plant(tree, module, line)
    result = _lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert named.split(" -> ")[0] in result.stdout and named.split(" -> ")[1] in result.stdout
