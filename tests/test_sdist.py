"""The source distribution is a complete tree that runs its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Quick: a subset that needs the fixtures (conftest.py), a worker module, an
# example, the README and the CI script, all of which the sdist must ship.
SUBSET = [
    "tests/test_units.py",
    "tests/test_readme.py",
    "tests/test_config.py",
    "tests/test_examples.py::test_pool_fork",
    "tests/test_permissions.py::test_permission_errors_name_the_log_the_need_and_the_fix",
]


def _tracked_files() -> set[str]:
    result = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:  # an unpacked sdist is no git checkout: compare with itself
        return {str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()}
    return set(result.stdout.split())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_sdist_ships_every_file_and_its_tests_pass(tmp_path: Path) -> None:
    """Build the sdist, check it holds every file of the checkout, unpack it and run a
    quick subset of its tests against its own sources."""
    pytest.importorskip("build", reason="needs the test extra: pip install -e '.[test]'")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (archive,) = tmp_path.glob("mplog-*.tar.gz")
    with tarfile.open(archive) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path, **safe)
    (tree,) = (p for p in tmp_path.iterdir() if p.is_dir())
    shipped = {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}
    missing = {
        name for name in _tracked_files() if not name.startswith((".gitignore", ".git/"))
    } - shipped
    assert not missing, f"not in the sdist: {sorted(missing)}"
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout
    imported = subprocess.run(
        [sys.executable, "-c", "import mplog; print(mplog.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(tree)), "the tests ran the sdist's own sources"
