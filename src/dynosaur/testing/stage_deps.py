"""Keep each `dvc.yaml` stage's code deps equal to the modules that stage imports.

DVC reruns a stage only when one of its `deps` changes. A stage that imports a helper its `deps` do not list
keeps a stale output when that helper changes, silently. So the code deps are not written by hand: this
module reads each stage's `cmd` (`python -m dynosaur.<layer>.<stage>`), follows every `dynosaur` import of
that module, at the top or inside a function, transitively, and lists the files reached.

    python -m dynosaur.testing.stage_deps           # print the stages whose deps differ; exit 1 if any
    python -m dynosaur.testing.stage_deps --write   # rewrite those deps in dvc.yaml (other deps are kept)
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PACKAGE = "dynosaur"
CMD = re.compile(r"python -m ((?:dynosaur)(?:\.\w+)+)")


def module_file(src: Path, module: str) -> Path | None:
    """The file of `module` under `src` (a package's `__init__.py`), or None if it is not ours."""
    base = src.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_modules(path: Path, module: str) -> set[str]:
    """Every `dynosaur` module that `path` imports anywhere in its body (lazy imports included)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            # `from dynosaur.pipeline import llm` imports a module, not a name
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_closure(src: Path, module: str) -> set[Path]:
    """The files of `module` and of every `dynosaur` module it imports, transitively, with their packages."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) not in seen)
        path = module_file(src, name)
        if path is None:
            continue
        files.add(path)
        todo.extend(imported_modules(path, name) - seen)
    return files


def expected_deps(root: Path, pipeline: dict) -> dict[str, list[str]]:
    """Stage name → the sorted code deps its `cmd` module needs, relative to `root`."""
    out: dict[str, list[str]] = {}
    src = root / "src"
    for name, stage in (pipeline.get("stages") or {}).items():
        match = CMD.search(str(stage.get("cmd", "")))
        if match:
            out[name] = sorted(str(p.relative_to(root)) for p in import_closure(src, match.group(1)))
    return out


def code_deps(stage: dict) -> list[str]:
    return sorted(
        d for d in stage.get("deps") or [] if isinstance(d, str) and d.startswith(f"src/{PACKAGE}/")
    )


def stale_stages(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Stage → (listed, expected) code deps, for each stage whose listed deps differ."""
    import yaml

    pipeline = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    stale = {}
    for name, expected in expected_deps(root, pipeline).items():
        listed = code_deps(pipeline["stages"][name])
        if listed != expected:
            stale[name] = (listed, expected)
    return stale


def rewrite(text: str, expected: dict[str, list[str]]) -> str:
    """dvc.yaml with each stage's `src/dynosaur/...` dep lines replaced by `expected` (comments kept)."""
    out: list[str] = []
    stage = None
    in_deps = False
    for line in text.splitlines(keepends=True):
        top = re.match(r"^  (\w[\w-]*):\s*$", line)
        if top:
            stage, in_deps = top.group(1), False
        if re.match(r"^    deps:\s*$", line):
            in_deps = True
            out.append(line)
            out.extend(f"      - {dep}\n" for dep in expected.get(stage or "", []))
            continue
        if in_deps and re.match(r"^    \S", line):
            in_deps = False
        if in_deps and re.match(rf"^      - src/{PACKAGE}/", line) and stage in expected:
            continue
        out.append(line)
    return "".join(out)


def main(argv: list[str]) -> int:
    import yaml

    root = Path.cwd()
    if "--write" in argv:
        path = root / "dvc.yaml"
        wanted = expected_deps(root, yaml.safe_load(path.read_text(encoding="utf-8")))
        path.write_text(rewrite(path.read_text(encoding="utf-8"), wanted), encoding="utf-8")
    stale = stale_stages(root)
    for name, (listed, expected) in stale.items():
        missing, extra = sorted(set(expected) - set(listed)), sorted(set(listed) - set(expected))
        print(f"{name}: missing {missing or '-'}; not imported {extra or '-'}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
