"""The package people install: the wheel built from this tree, installed into a fresh virtualenv, used from an
empty directory as a new user would (`evalkit --version`, `evalkit demo`, `evalkit init`, `evalkit score`).

The fresh virtualenv borrows its dependencies (torch, transformers, ...) from the environment running the tests,
through one `.pth` line naming that environment's site-packages, so no gigabytes are installed; evalkit itself
comes only from the wheel (installed `--no-deps`). The `.pth` files inside a directory added that way are not
processed, so the test environment's editable evalkit is not importable there, which the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import evalkit

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
PACKAGE_DATA = [
    "evalkit/suites/default.yaml",
    "evalkit/py.typed",
    "evalkit/report/templates/report.html.j2",
    "evalkit/report/templates/explorer.js",
    "evalkit/results/schemas/results.schema.json",
    "evalkit/judges/templates/pairwise.txt",
]


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv with the wheel in it, and an empty directory to work in."""

    venv: Path
    work: Path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = _clean_env() | {"PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        return subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _succeeds(argv: list[str], cwd: Path) -> None:
    """Run a build or install step in the clean environment; its output's tail is the failure message."""
    done = subprocess.run(argv, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _clean_env() -> dict[str, str]:
    """The environment without what would make a source tree importable (PYTHONPATH names one when the tests
    run from a checkout), offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return env | {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from a copy of what they are made of (the tree itself stays untouched)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    shutil.copytree(ROOT / "evalkit", source / "evalkit", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    # Without build isolation: the test environment's setuptools (the dev extra's), nothing downloaded.
    _succeeds([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)], cwd=source)
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], env=_clean_env(), check=True, timeout=120
    )
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            env=_clean_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = sysconfig.get_paths()
    (site / "dependencies.pth").write_text(
        "".join(f"{path}\n" for path in dict.fromkeys([ours["purelib"], ours["platlib"]]))
    )
    (wheel,) = dist.glob("*.whl")
    # pip of the test environment, installing into the fresh one: the wheel only, its dependencies borrowed.
    _succeeds(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)],
        cwd=venv,
    )
    work = tmp_path_factory.mktemp("empty")
    return Installed(venv, work)


def test_the_wheel_and_sdist_carry_the_package_data_and_declare_the_extras(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"evalkit_dpo-{evalkit.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"evalkit_dpo-{evalkit.__version__}.dist-info/METADATA").decode()
        scripts = archive.read(f"evalkit_dpo-{evalkit.__version__}.dist-info/entry_points.txt").decode()
    assert [name for name in PACKAGE_DATA if name not in names] == []
    assert not any(name.startswith(("tests/", "suites/")) for name in names)
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "Name: evalkit-dpo" in headers and f"Version: {evalkit.__version__}" in headers
    assert {line for line in headers if line.startswith("Provides-Extra:")} == {
        "Provides-Extra: dev",
        "Provides-Extra: docs",
        "Provides-Extra: capabilities",
        "Provides-Extra: serve",
    }
    assert 'Requires-Dist: lm-eval[api]<0.5,>=0.4.13; extra == "capabilities"' in headers
    assert "evalkit = evalkit.cli:entrypoint" in scripts
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = set(archive.getnames())
    prefix = f"evalkit_dpo-{evalkit.__version__}/"
    assert [name for name in PACKAGE_DATA if prefix + name not in members] == []


def test_evalkit_comes_from_the_wheel_alone(installed: Installed) -> None:
    probe = (
        "import importlib.metadata, json, sys, evalkit; "
        "print(json.dumps([evalkit.__file__, importlib.metadata.version('evalkit-dpo'), "
        "[repr(f) for f in sys.meta_path if 'editable' in repr(f).lower()]]))"
    )
    done = installed.run("python", "-c", probe)
    assert done.returncode == 0, done.stderr
    location, version, editable_finders = json.loads(done.stdout)
    assert Path(location).is_relative_to(installed.venv), location
    assert version == evalkit.__version__
    assert editable_finders == []
    done = installed.run("evalkit", "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"evalkit {evalkit.__version__}")


def test_demo_then_init_then_score_from_an_empty_directory(installed: Installed, reduced: list[str]) -> None:
    started = time.perf_counter()
    # The default suite's world, smaller (as the other integration tests run it); its gate is for full-size runs.
    demo = installed.run("evalkit", "demo", *reduced, "--set", "capabilities.limit=20", timeout=1500)
    seconds = time.perf_counter() - started
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    work = installed.work
    assert "demo finished: open evalkit-demo/report.html in a browser" in demo.stdout
    for name in ("results.json", "report.html", "report.md", "models/aligned/adapter_config.json"):
        assert (work / "evalkit-demo" / name).is_file(), name
    assert (work / ".evalkit" / "world" / "base").is_dir()
    assert not (work / "reports").exists()  # the demo writes under --out only
    print(f"evalkit demo from an empty directory: {seconds:.0f} s")

    eval_pairs = ".evalkit/world/pairs/eval.jsonl"
    init = installed.run(
        "evalkit",
        "init",
        "--data",
        eval_pairs,
        "--model",
        "evalkit-demo/models/aligned",
        "--ref",
        ".evalkit/world/base",
    )
    assert init.returncode == 0, init.stderr
    assert init.stdout.strip() == "wrote suites/mine.yaml; run it with: evalkit bench suites/mine.yaml"
    probe = (
        "from evalkit.config.suite import load_suite; s = load_suite('suites/mine.yaml'); d = s.datasets[0]; "
        "print(d.path, d.id_column, d.subset_column, s.reference, s.candidate_model)"
    )
    loaded = installed.run("python", "-c", probe)
    assert loaded.stdout.split() == [eval_pairs, "id", "subset", "reference", "candidate"], loaded.stderr

    score = installed.run(
        "evalkit",
        "score",
        "--model",
        "evalkit-demo/models/aligned",
        "--ref",
        ".evalkit/world/base",
        "--data",
        eval_pairs,
        "--out",
        "scores.jsonl",
        timeout=600,
    )
    assert score.returncode == 0, score.stdout[-3000:] + score.stderr[-3000:]
    data = [json.loads(line) for line in (work / eval_pairs).read_text().splitlines()]
    data_ids, subsets = [row["id"] for row in data], {row["id"]: row["subset"] for row in data}
    scored = [json.loads(line) for line in (work / "scores.jsonl").read_text().splitlines()]
    assert len(scored) == len(data_ids) == 12  # 16 pairs a subset, a quarter held out
    assert all("margin" in row for row in scored)
    # The data's own ids and subsets are kept (never renumbered `eval-0…`), so scores join back onto the data.
    assert sorted(row["id"] for row in scored) == sorted(data_ids)
    assert all(row["subset"] == subsets[row["id"]] for row in scored)
