"""Quality audits of releases: the sample (a ledger record) and the answers (append-only files).

    ledger/audits.jsonl                       AuditSample   one line per sample drawn (`dyno audit sample`)
    audits/<audit_id>/human/<reviewer>.jsonl  AuditAnswer   a person's answers, one line per change
    audits/<audit_id>/judge.jsonl             AuditAnswer   the LLM judge's answers (`dyno audit judge`)

**The draw** is stratified by source, then by task, and reproducible from (release, seed, n): the n items are
shared among sources in proportion to their instances (largest remainder, ties by source id), each source's
share among its tasks the same way, and within a task the instances whose sha256(release, seed, instance id)
ranks lowest are taken. Proportional shares make the sample self-weighting (every instance of the release
had the same chance), so the overall share fully valid needs no weights. No random generator is involved,
so no library or platform version can change a draw.

**The sample record** goes to the ledger like a retraction: appended under the registry lock, hash-chained,
committed at once, checked by `dyno verify`.

**Answers** are written the moment they are given, each as one hash-chained line (`ledger.append_records`:
the old bytes plus the new line, atomically), one file per reviewer, so reviewers working apart never
collide when their files are merged, and a killed server loses nothing already written. The latest line per
(reviewer, instance) is the answer; an undo is a line that takes answers back. They live outside `ledger/`
because they are written between commits, and the release commands refuse a ledger with uncommitted
changes; commit `audits/` like any work. `dyno verify` checks their hashes, chains and git history too.
The judge's answers never share a file with people's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from dynosaur.core.errors import AuditError, NotFound, ParamsError
from dynosaur.core.records import AuditAnswer, AuditItem, AuditSample, ManifestEntry, Release
from dynosaur.registry.ledger import Ledger, append_records, parse_version, read_records
from dynosaur.registry.lock import registry_lock
from dynosaur.registry.vcs import Git

AUDITS_DIR = "audits"
JUDGE = "judge"
METHOD = "stratified: source, then task (proportional, largest remainder); sha256(release, seed, id) rank"
REVIEWER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
ROW_FIELDS = ("instruction", "input", "output", "source_id", "task_id", "split", "row")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the draw (pure) -------------------------------------------------------------------------------------


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """`n` shared among strata in proportion to their sizes: the floors of the quotas, then one more to the
    largest remainders (ties by name). Each share is at most its stratum's size; all of them when n ≥ total."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    quotas = {k: n * size / total for k, size in sizes.items()}
    shares = {k: int(q) for k, q in quotas.items()}
    left = n - sum(shares.values())
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - shares[k]), k))[:left]:
        shares[k] += 1
    return shares


def rank(release: str, seed: int, instance_id: str) -> str:
    return hashlib.sha256(f"{release}\x1f{seed}\x1f{instance_id}".encode()).hexdigest()


def stratified_sample(
    population: Mapping[str, Mapping[str, list[str]]], n: int, seed: int, release: str
) -> list[AuditItem]:
    """`n` items from source → task → instance ids (see the module docstring), sorted by source, task, id."""
    items: list[AuditItem] = []
    by_source = allocate({s: sum(len(ids) for ids in tasks.values()) for s, tasks in population.items()}, n)
    for source_id in sorted(population):
        tasks = population[source_id]
        by_task = allocate({t: len(ids) for t, ids in tasks.items()}, by_source[source_id])
        for task_id in sorted(tasks):
            chosen = sorted(tasks[task_id], key=lambda i: rank(release, seed, i))[: by_task[task_id]]
            items += [AuditItem(instance_id=i, task_id=task_id, source_id=source_id) for i in sorted(chosen)]
    return items


def audit_id(tag: str, seed: int, n: int) -> str:
    return f"{tag}-seed{seed}-n{n}"


# --- reading released instances --------------------------------------------------------------------------


@contextlib.contextmanager
def released_shards(root: Path, release: Release, entries: list[ManifestEntry]) -> Iterator[dict[str, Path]]:
    """shard → a readable file with the released bytes (the DVC cache, else pulled), for the block's life."""
    from dynosaur.registry.pull import local_shards

    staging = Path(tempfile.mkdtemp(prefix="dyno-audit-"))
    try:
        yield local_shards(root, release, entries, staging) if entries else {}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _ids(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str(i) for i in pq.ParquetFile(path).read(columns=["instance_id"]).column(0).to_pylist()]


def _rows(files: dict[str, Path], entries: list[ManifestEntry], wanted: set[str]) -> dict[str, dict]:
    import pyarrow.parquet as pq

    rows: dict[str, dict] = {}
    for e in entries:
        for row in pq.ParquetFile(files[e.shard]).read().to_pylist():
            if row["instance_id"] in wanted:
                rows[row["instance_id"]] = row
    return rows


def instance_rows(root: Path, sample: AuditSample) -> dict[str, dict]:
    """instance id → its row (instruction, input, output, provenance), for every item of the sample."""
    ledger = Ledger(root)
    release = ledger.release(sample.release)
    tasks = {item.task_id for item in sample.items}
    entries = [e for e in ledger.read_manifest(release) if e.task_id in tasks]
    with released_shards(root, release, entries) as files:
        rows = _rows(files, entries, {item.instance_id for item in sample.items})
    if missing := [i.instance_id for i in sample.items if i.instance_id not in rows]:
        raise AuditError(
            f"audit {sample.audit_id}: instance {missing[0]} is not in {sample.release}'s shards"
        )
    return rows


# --- samples ---------------------------------------------------------------------------------------------


def samples(root: Path) -> list[AuditSample]:
    return Ledger(root).read(AuditSample)


def find_sample(root: Path, version: str | None = None, audit: str | None = None) -> AuditSample:
    """The audit named, else the latest sample of `version`, else the latest sample of all."""
    found = samples(root)
    if audit is not None:
        for s in found:
            if s.audit_id == audit:
                return s
        raise NotFound(f"unknown audit {audit!r} (audits: {', '.join(s.audit_id for s in found) or 'none'})")
    if version is not None:
        tag = f"v{parse_version(version)}"
        found = [s for s in found if s.release == tag]
        if not found:
            raise NotFound(f"{tag} has no audit sample: run `dyno audit sample --release {tag}`")
    if not found:
        raise NotFound("no audit sample yet: run `dyno audit sample`")
    return found[-1]


def draw_sample(root: Path, version: str | None = None, n: int = 200, seed: int = 0) -> AuditSample:
    """The stratified sample of a release (the latest by default): no record written."""
    from importlib.metadata import version as package_version

    if n < 1:
        raise ParamsError("--n must be at least 1")
    ledger = Ledger(root)
    releases = ledger.releases()
    if not releases:
        raise NotFound("no release to audit yet: run `dyno release` first")
    release = ledger.release(version) if version is not None else releases[-1]
    entries = ledger.read_manifest(release)
    with released_shards(root, release, entries) as files:
        population: dict[str, dict[str, list[str]]] = {}
        for e in entries:
            population.setdefault(e.source_id, {})[e.task_id] = _ids(files[e.shard])
        items = stratified_sample(population, n, seed, release.tag)
        wanted = {i.task_id for i in items}
        rows = _rows(files, [e for e in entries if e.task_id in wanted], {i.instance_id for i in items})
    git = Git(root)
    commit = git("rev-list", "-n", "1", release.tag, check=False).strip() if git.is_repo() else ""
    return AuditSample(
        audit_id=audit_id(release.tag, seed, n),
        release=release.tag,
        release_hash=release.hash,
        seed=seed,
        n=n,
        method=METHOD,
        items=items,
        code_version=f"dynosaur {package_version('dynosaur')}" + (f" at {commit}" if commit else ""),
        prompt_versions=sorted({str(r.get("prompt_version")) for r in rows.values()}),
        models=sorted({str(r.get("model")) for r in rows.values()}),
        created_at=now(),
    )


def record_sample(
    root: Path, version: str | None = None, n: int = 200, seed: int = 0
) -> tuple[AuditSample, bool]:
    """Draw the sample and append it to ledger/audits.jsonl in its own commit; (sample, True when new). The
    same (release, seed, n) drawn again is the recorded sample, not a second line."""
    from dynosaur.registry.releases import recover

    git = Git(root)
    git.require_branch()
    with registry_lock(root, "audit sample") as lease:
        recover(root, lease)
        sample = draw_sample(root, version, n, seed)
        for known in samples(root):
            if known.audit_id == sample.audit_id:
                if [i.instance_id for i in known.items] != [i.instance_id for i in sample.items]:
                    raise AuditError(
                        f"audit {known.audit_id} was recorded with other items than it draws now"
                    )
                return known, False
        ledger = Ledger(root)
        ledger.append(AuditSample, [sample])
        path = ledger.path(AuditSample).relative_to(root).as_posix()
        git("add", "--", path)
        git(
            "commit", "-q", "-m", f"audit sample {sample.audit_id}: {len(sample.items)} instances", "--", path
        )
        return ledger.read(AuditSample)[-1], True


# --- answers ---------------------------------------------------------------------------------------------


def audit_dir(root: Path, audit: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", audit) or audit.startswith("."):
        raise ParamsError(f"{audit!r} is not an audit id")
    return root / AUDITS_DIR / audit


def check_reviewer(name: str) -> str:
    name = name.strip()
    if not REVIEWER.match(name) or name.lower() == JUDGE:
        raise ParamsError(
            f"reviewer {name!r}: use 1 to 40 letters, digits, '.', '_' or '-' (and not {JUDGE!r})"
        )
    return name


def answers_path(root: Path, audit: str, reviewer: str) -> Path:
    folder = audit_dir(root, audit)
    return (
        folder / "judge.jsonl"
        if reviewer == JUDGE
        else folder / "human" / f"{check_reviewer(reviewer)}.jsonl"
    )


def answer_files(root: Path, audit: str | None = None) -> list[Path]:
    """Every answer file (of one audit, or of all)."""
    base = root / AUDITS_DIR
    if audit is not None:
        base = audit_dir(root, audit)
        return sorted([*base.glob("human/*.jsonl"), *base.glob("judge.jsonl")])
    return sorted([*base.glob("*/human/*.jsonl"), *base.glob("*/judge.jsonl")])


@contextlib.contextmanager
def _file_lock(folder: Path) -> Iterator[None]:
    """One writer at a time per audit folder (two servers, or a server and `dyno audit judge`)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_answers(root: Path, answers: list[AuditAnswer]) -> None:
    """Append answers, each to its reviewer's file, at once (see the module docstring)."""
    by_path: dict[Path, list[AuditAnswer]] = {}
    for a in answers:
        if (a.kind == "judge") != (a.reviewer == JUDGE):
            raise AuditError(f"answer by {a.reviewer!r}: only the judge's answers are of kind 'judge'")
        by_path.setdefault(answers_path(root, a.audit_id, a.reviewer), []).append(a)
    for path, batch in by_path.items():
        with _file_lock(path.parent.parent if path.parent.name == "human" else path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            append_records(path, AuditAnswer, batch)


def read_answers(root: Path, audit: str, kind: str | None = None) -> list[AuditAnswer]:
    """Every answer line of an audit (hashes and chains checked), in file order; `kind` human or judge."""
    out = []
    for path in answer_files(root, audit):
        out += [a for a in read_records(path, AuditAnswer, root, history=False) if kind in (None, a.kind)]
    return out


def latest(answers: list[AuditAnswer]) -> dict[tuple[str, str], AuditAnswer]:
    """(reviewer, instance id) → the answer as it stands (the last line written for it)."""
    current: dict[tuple[str, str], AuditAnswer] = {}
    for a in answers:
        current[(a.reviewer, a.instance_id)] = a
    return current
