"""The filter's rules on a task's fields: is its mapping (inputs → one output) usable at all?

One output, at least one input, each input once, every field known and not media, the output not among the
inputs, the output not bookkeeping (`fields.is_bookkeeping`) nor code from a repository's metadata, and
(with `filter.snap_to_mappings`) a mapping `fields.enumerate_mappings` finds plausible. Each rule is
`(spec, meta, params) -> reason | None`; its name is its reason code; dynosaur.pipeline.filter runs them in
order (`RULES`).
"""

from __future__ import annotations

import re

from dynosaur.core.params import FilterParams
from dynosaur.core.records import SourceMeta, TaskSpec
from dynosaur.pipeline.fields import enumerate_mappings, is_bookkeeping, is_undeterminable, snake_name

# Repository metadata that a code file's row carries besides the code: with META_NAME, the inputs that
# can't determine a file's content (`code_from_metadata`).
REPO_NAME = re.compile(r"^(language|lang|programming_language|extension|ext|license_type|licenses?)$")


# Fields that hold source code (or a file's whole content).
CODE_NAME = re.compile(
    r"(^|_)(code|content|contents|program|snippet|script|func|function|bytecode|source_code)(_|$|\d)"
)


def output_name(spec: TaskSpec) -> str:
    if isinstance(spec.output_field, list):
        return spec.output_field[0] if spec.output_field else ""
    return spec.output_field or ""


def multi_output(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "multi_output" if isinstance(spec.output_field, list) and len(spec.output_field) > 1 else None


def no_input(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "no_input" if not [f for f in spec.input_fields if f.strip()] else None


def duplicate_input(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    inputs = [f.strip() for f in spec.input_fields if f.strip()]
    return "duplicate_input" if len(set(inputs)) < len(inputs) else None


def unknown_field(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    for name in [*spec.input_fields, output_name(spec)]:
        feature = meta.feature(name)
        if feature is None or feature.is_media:
            return "unknown_field"
    return None


def io_overlap(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "io_overlap" if output_name(spec) in spec.input_fields else None


def meta_field(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    name = output_name(spec)
    return "meta_field" if is_bookkeeping(name, meta) or is_undeterminable(name, meta) else None


def code_from_metadata(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """Source code (or a file's content) from a repository's metadata: a licence, a path or a repository
    name can't determine a file (the paper's corpus has ~180 such tasks)."""
    if not CODE_NAME.search(snake_name(output_name(spec))):
        return None
    inputs = [f for f in spec.input_fields if f.strip()]
    if inputs and all(is_bookkeeping(f, meta) or REPO_NAME.match(snake_name(f)) for f in inputs):
        return "code_from_metadata"
    return None


def unlisted_mapping(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """Propose, then snap (issue 19): a task whose (inputs → output) is none of the mappings that
    `enumerate_mappings` finds plausible from the field statistics (its output one of theirs, its inputs
    sharing one) is dropped, when `filter.snap_to_mappings` is on. Fields-first tasks are such mappings by
    construction; the rule matters for
    `propose`, whose wording is freer but whose fields are often wrong. Bare specs (no statistics: the paper's
    tasks) have nothing to snap to and pass."""
    if not p.snap_to_mappings or not any(f.stats is not None for f in meta.features):
        return None
    output, inputs = output_name(spec), set(spec.input_fields)
    fits = any(o == output and inputs & set(i) for i, o in enumerate_mappings(meta, max_mappings=1000))
    return None if fits else "unlisted_mapping"
