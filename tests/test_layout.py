"""The package's shape stays what the folders say: imports flow one way, and dvc.yaml's code deps are exact.

Layers, top to bottom: cli → pipeline, training → registry → core. A module may import its own layer and
any layer below it, never one above, not even inside a function. `testing` holds fakes for tests and
benchmarks and may import anything; nothing in the package imports it.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import yaml

from dynosaur.testing import stage_deps

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "dynosaur"

# layer → the layers it may import (besides itself)
ALLOWED = {
    "core": set(),
    "registry": {"core"},
    "pipeline": {"registry", "core"},
    "training": {"registry", "core"},
    "cli": {"pipeline", "training", "registry", "core"},
    "testing": {"cli", "pipeline", "training", "registry", "core"},
}
# third-party modules that only one place may import (STYLE: one place for LLM calls and for the Hub)
OWNERS = {
    # batch: the Batch API's error types only (a missing /v1/files, refused credentials); it gets the client
    # itself, with its key, base_url, retries and timeout, from dynosaur.pipeline.llm.LLM.client().
    "openai": {"dynosaur.pipeline.llm", "dynosaur.pipeline.batch", "dynosaur.testing.fake_openai"},
}


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_sits_in_a_known_layer():
    stray = [m for m, _ in modules() if m != "dynosaur" and layer(m) not in ALLOWED]
    assert not stray, f"modules outside core/pipeline/registry/training/cli/testing: {stray}"


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_flow_one_way(module: str, path: Path):
    own = layer(module)
    bad = []
    for name in stage_deps.imported_modules(path, module):
        target = layer(name)
        if own is None or target is None or target == own:
            continue
        if target not in ALLOWED[own]:
            bad.append(name)
    assert not bad, f"{module} ({own}) imports a higher or sibling layer: {sorted(bad)}"


def test_third_party_clients_have_one_owner():
    for module, path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in OWNERS:
                    assert module in OWNERS[top], f"{module} imports {top}; only {OWNERS[top]} may"


def test_import_checker_sees_lazy_and_from_imports(tmp_path: Path):
    """The checker itself must catch what the tests above rely on: a lazy import of a higher layer."""
    mod = tmp_path / "x.py"
    mod.write_text(
        "from dynosaur.core import io\n"
        "def f():\n    from dynosaur.cli.main import cli\n    from ..pipeline import llm\n"
    )
    found = stage_deps.imported_modules(mod, "dynosaur.registry.x")
    assert {"dynosaur.core.io", "dynosaur.cli.main", "dynosaur.pipeline.llm"} <= found


def test_dvc_yaml_code_deps_are_the_import_closure():
    stale = stage_deps.stale_stages(ROOT)
    assert not stale, (
        "dvc.yaml deps differ from the stages' imports; run `python -m dynosaur.testing.stage_deps --write`:\n"
        + "\n".join(
            f"  {name}: listed {len(listed)}, expected {len(expected)}: missing {sorted(set(expected) - set(listed))}"
            for name, (listed, expected) in stale.items()
        )
    )


def test_deps_check_catches_a_missing_module(tmp_path: Path):
    """Drop one module from a stage's deps and the check must name that stage."""
    shutil.copytree(SRC, tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "dvc.yaml").read_text()
    head, organize = text.split("\n  organize:\n", 1)
    organize = organize.replace("      - src/dynosaur/core/io.py\n", "", 1)
    (tmp_path / "dvc.yaml").write_text(f"{head}\n  organize:\n{organize}")
    assert set(stage_deps.stale_stages(tmp_path)) == {"organize"}
    # and --write puts it back
    pipeline = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text(
        stage_deps.rewrite((tmp_path / "dvc.yaml").read_text(), stage_deps.expected_deps(tmp_path, pipeline))
    )
    assert stage_deps.stale_stages(tmp_path) == {}


def test_every_stage_module_is_a_dvc_stage():
    """A stage module that `dvc repro` never runs is a trap: its params would be silently ignored."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    commands = " ".join(str(stage.get("cmd", "")) for stage in pipeline["stages"].values())
    stage_modules = [
        module
        for module, path in modules()
        if layer(module) in {"pipeline", "training"}
        and '\nif __name__ == "__main__":\n    run(' in path.read_text()
    ]
    assert {"dynosaur.pipeline.collect", "dynosaur.training.continual"} <= set(stage_modules)
    missing = [m for m in stage_modules if f"python -m {m} " not in commands]
    assert not missing, f"stage modules that dvc.yaml never runs: {missing}"


MAIN_LINES = 40  # a stage's main(): read params and inputs, call pure functions, write outputs (issue 23)


def test_stage_mains_are_thin():
    """Every `main()` in the package (the stages', the CLI's) stays short: the work is in functions that
    tests call directly."""
    long = {}
    for module, path in modules():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAIN_LINES:
                    long[module] = size
    assert not long, f"stage main()s over {MAIN_LINES} lines: {long}"


MODULE_LINES = 500  # STYLE: split before ~500 lines, along the seams a module already has (issue 23)


def test_modules_are_small():
    sizes = {m: len(path.read_text().splitlines()) for m, path in modules()}
    assert len(sizes) > 100 and "dynosaur.pipeline.organize" in sizes  # the whole package was read
    big = {m: n for m, n in sizes.items() if n > MODULE_LINES}
    assert not big, f"modules over {MODULE_LINES} lines: {big}"
