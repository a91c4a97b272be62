"""Where the pipeline's outputs are: read from `dvc.yaml`, the one place paths are named.

Each stage's `cmd` passes its paths as `--name path`; the workspace reads them back from there, so moving an
output in `dvc.yaml` moves it for `dyno` too.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from pydantic import BaseModel

from dynosaur.core.errors import NotInProject, PipelineFileError
from dynosaur.core.records import FilteredSource, GeneratedSource, SourceMeta
from dynosaur.core.segments import RecordFolder

# What marks a project's root folder: its pipeline, its params, or DVC's folder (a clone that only holds the
# release registry has no pipeline); any one is enough.
ROOT_MARKERS = ("dvc.yaml", "params.yaml", ".dvc")


def find_root(start: Path) -> Path:
    """The project's root: `start` or the nearest folder above it holding `dvc.yaml`, `params.yaml` or `.dvc/`,
    as git and DVC find theirs; `NotInProject` (exit 2) when there is none."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / m).exists() for m in ROOT_MARKERS):
            return folder
    raise NotInProject(
        f"not inside a Dynosaur project: no dvc.yaml, params.yaml or .dvc/ in {start} or any folder above it"
    )


class Workspace(BaseModel):
    root: Path
    collected: Path
    generated: Path
    tasks: Path
    corpus: Path
    cache: Path
    batches: Path | None = None  # generate's batch tracker (llm.mode: batch)

    def collect_records(self) -> RecordFolder[SourceMeta]:
        return RecordFolder(self.collected, SourceMeta)

    def generate_records(self) -> RecordFolder[GeneratedSource]:
        return RecordFolder(self.generated, GeneratedSource)

    def task_records(self) -> RecordFolder[FilteredSource]:
        return RecordFolder(self.tasks, FilteredSource)

    @classmethod
    def load(cls, root: Path = Path(".")) -> Workspace:
        dvc_yaml = root / "dvc.yaml"
        try:
            stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
        except FileNotFoundError:
            raise PipelineFileError(f"{dvc_yaml} not found: run dyno from the project root") from None
        except (yaml.YAMLError, AttributeError):
            raise PipelineFileError(f"{dvc_yaml} is not a valid pipeline file") from None
        args: dict[str, dict[str, str]] = {}
        for name, stage in stages.items():
            words = shlex.split(stage.get("cmd", ""))
            args[name] = {w[2:]: v for w, v in zip(words, words[1:], strict=False) if w.startswith("--")}
        try:
            return cls(
                root=root,
                collected=root / args["collect"]["out"],
                generated=root / args["generate"]["out"],
                cache=root / args["generate"]["cache"],
                batches=root / args["generate"]["batches"] if "batches" in args["generate"] else None,
                tasks=root / args["filter"]["out"],
                corpus=root / args["organize"]["out"],
            )
        except KeyError as exc:
            raise PipelineFileError(f"{dvc_yaml}: stage or path {exc} missing from the pipeline") from None
