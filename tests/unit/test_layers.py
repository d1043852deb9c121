"""The house's one rule: a stage imports only from its own stage and earlier ones (docs/explanation/layout.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import evalkit

PACKAGE = Path(evalkit.__file__).parent

LAYERS: list[set[str]] = [
    {"errors", "console"},
    {"metrics.names"},  # the metric registry: vocabulary every stage reads, importing nothing of evalkit's
    {"results"},  # the records every stage fills in, and their files
    {"config"},
    {"data"},
    {"world"},
    {"checkpoints"},
    {"train", "trainers"},
    {"scoring"},
    {"metrics"},
    {"generate"},
    {"scoring.served"},  # scoring on a serving engine speaks through generate's one HTTP client
    {"judges"},
    {"capabilities"},
    {"report"},
    {"gate"},
    {"api"},
    {"pipeline"},
    {"cli", "__main__", ""},
]


def layer(module: str) -> int:
    """The stage of `evalkit.<module>`: its longest prefix named in LAYERS."""
    parts = module.split(".")
    for length in range(len(parts), -1, -1):
        prefix = ".".join(parts[:length])
        for index, names in enumerate(LAYERS):
            if prefix in names:
                return index
    raise AssertionError(f"evalkit.{module} belongs to no stage in LAYERS")


def imported(path: Path) -> set[str]:
    """Every evalkit module `path` imports, at the top or inside functions, as a name relative to `evalkit`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "evalkit":
            base = node.module.removeprefix("evalkit").lstrip(".")
            for alias in node.names:
                if alias.name == "__version__":
                    continue  # the package's version string, which every stage may print
                submodule = f"{base}.{alias.name}".lstrip(".")
                # `from evalkit.metrics import stats` imports the module `metrics.stats`.
                is_module = (PACKAGE / submodule.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE / submodule.replace(".", "/")
                ).is_dir()
                found.add(submodule if is_module else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("evalkit").lstrip(".") for a in node.names if a.name.startswith("evalkit")}
    return found


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix("__init__").rstrip(".")
        out[name] = path
    return out


def test_no_stage_imports_a_later_stage() -> None:
    wrong = [
        f"evalkit.{module} (stage {layer(module)}) imports evalkit.{dependency} (stage {layer(dependency)})"
        for module, path in sorted(modules().items())
        for dependency in sorted(imported(path))
        if layer(dependency) > layer(module)
    ]
    assert wrong == []


def test_the_vocabulary_imports_nothing_of_evalkits() -> None:
    assert imported(PACKAGE / "metrics" / "names.py") == set()


def test_the_rule_has_teeth(tmp_path: Path) -> None:
    """A stage module importing a later stage is found, whether at the top or inside a function."""
    late = tmp_path / "late.py"
    late.write_text("def f():\n    from evalkit.pipeline.bench import run_bench\n")
    assert imported(late) == {"pipeline.bench"}
    assert layer("pipeline.bench") > layer("scoring.score")
    assert layer("metrics.names") < layer("config") < layer("metrics.stats")
