"""The `dyno` click group that every command module registers on, its `--json` option, and the project root
every command works from (see main.py for the entry point and the list of command modules)."""

from __future__ import annotations

import os
from pathlib import Path

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout (nothing else).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynosaur")
def cli() -> None:
    """Dynosaur: grow instruction-tuning corpora from annotated datasets.

    Run the pipeline with `dvc repro`; inspect what it made with these commands.
    """


def _root() -> Path:
    """The project's root, found from the working folder up as git and DVC find theirs; `dyno` then works
    from there, so `params.yaml` and every path of `dvc.yaml` read as they do at the root. Outside any
    project: one line, exit 2. Paths a user gives (`pull --out`) are resolved before this runs."""
    from dynosaur.registry.workspace import find_root

    root = find_root(Path.cwd())
    if Path.cwd().resolve() != root:
        os.chdir(root)
    return root


def _workspace():
    from dynosaur.registry.workspace import Workspace

    _root()
    return Workspace.load(Path("."))
