"""The run folder, in one place: its layout (every file name), creating, locking and recognising it,
and its manifest (read, validate, write). A search uses it; other kinds of run reuse it by ``kind``.

Layout of ``runs/<run>/``: ``manifest.json``, ``space.yaml`` (the space copy), ``trials/part-<id>.parquet``,
``optuna.db``, ``ray.log``, ``ray/``, ``interrupted/`` and ``.lock`` (docs/search.md describes each); a
fidelity study adds ``fidelity_plan.json``, ``fidelity.json`` and ``fidelity.png`` (docs/fidelity.md).

Example:
    ``tmp`` is the example's temporary folder and ``manifest`` a search's Manifest (conftest.py):

    >>> import archbench.space
    >>> folder = RunFolder.create(tmp / "demo")          # UserError if it already holds a run
    >>> with folder.locked():
    ...     _ = folder.write_manifest(manifest, space_text=archbench.space.load("tiny_cpu").source_text)
    >>> sorted(p.name for p in folder.path.iterdir())
    ['.lock', 'manifest.json', 'space.yaml']
    >>> RunFolder.open(tmp / "demo").read_manifest().kind
    'search'
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, get_origin, get_type_hints

from archbench._atomic import write_atomic
from archbench.errors import UserError
from archbench.objectives import Objective, objectives_from_records

MANIFEST_FILE = "manifest.json"
SPACE_COPY = "space.yaml"
TRIALS_DIR = "trials"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
PART_GLOB = f"{PART_PREFIX}*{PART_SUFFIX}"
STUDY_FILE = "optuna.db"
RAY_LOG = "ray.log"
RAY_DIR = "ray"
INTERRUPTED_DIR = "interrupted"
LOCK_FILE = ".lock"
PLAN_FILE = "fidelity_plan.json"  # a fidelity study's architectures, fixed before any training
ANALYSIS_FILE = "fidelity.json"  # its rank analysis, rewritten whenever it is analysed
SCATTER_FILE = "fidelity.png"
SCREEN_POOL_FILE = "screen_pool.parquet"  # a screened search's candidates, the trained ones marked

MANIFEST_VERSION = 1
DEFAULT_KIND = "search"  # manifests written before runs had kinds are searches

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")


def trials_dir(run_dir: str | Path) -> Path:
    """The folder holding a run's part files."""
    return Path(run_dir) / TRIALS_DIR


def part_path(run_dir: str | Path, trial_id: str) -> Path:
    """Where trial ``trial_id`` of the run in ``run_dir`` is stored.

    Raises:
        ValueError: the trial id cannot name a file.
    """
    if not _SAFE_ID.match(trial_id) or len(trial_id) > 200:
        raise ValueError(
            f"trial_id {trial_id!r} cannot name a file: use letters, digits and _ . = - (starting with a letter or digit)"
        )
    return trials_dir(run_dir) / f"{PART_PREFIX}{trial_id}{PART_SUFFIX}"


# ---- the manifest --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    """What was asked, on what, with what: command, options (flat), space copy and hash, objectives,
    seed, versions, hardware, latency isolation, schema version; everything to read or resume a run.

    ``kind`` names the kind of run (``"search"``); the fields are those every kind records.
    """

    run_id: str
    created_at: str
    command: str
    options: dict[str, Any]
    space: dict[str, Any]
    objectives: list[dict[str, str]]
    seed: int
    schema_version: int
    versions: dict[str, str]
    hardware: dict[str, Any]
    latency_isolation: str
    manifest_version: int = MANIFEST_VERSION
    resumed: list[str] = field(default_factory=list)
    kind: str = DEFAULT_KIND

    @property
    def objective_list(self) -> tuple[Objective, ...]:
        """The objectives as :class:`Objective` (validated when the manifest was read)."""
        return objectives_from_records(self.objectives)[0] or ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """A manifest from its JSON form, checked: required keys, their types, known objectives.

        Keys this version does not know are ignored (a newer minor writer may add some).

        Raises:
            ValueError: the reason in one line (the caller prefixes the file).
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:  # no default: required
                    raise ValueError(f"no '{f.name}'")
                continue
            expected = get_origin(hints[f.name]) or hints[f.name]
            value = data[f.name]
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(f"'{f.name}' is not a {expected.__name__}")
            values[f.name] = value
        manifest = cls(**values)
        if manifest.manifest_version > MANIFEST_VERSION:
            raise ValueError(f"manifest version {manifest.manifest_version}; this archbench reads up to {MANIFEST_VERSION}")
        _, unknown = objectives_from_records(manifest.objectives)
        if unknown:
            raise ValueError(f"objective '{unknown[0]}' is not one archbench knows")
        return manifest


# ---- the lock ------------------------------------------------------------------------------------
class RunDirLock:
    """An exclusive ``flock`` on ``<run>/.lock`` held while a driver works on the run, so a second
    ``--resume`` of a live run fails at once instead of failing its running trials; the kernel
    drops the lock when the driver dies, however it dies."""

    def __init__(self, activity: str = DEFAULT_KIND) -> None:
        self.activity = activity  # written beside the pid, so a second driver's error names it
        self._fd: int | None = None

    def acquire(self, run_dir: Path) -> None:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            pid, _, activity = os.read(fd, 200).decode(errors="replace").strip().partition(" ")
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                what = activity or DEFAULT_KIND  # lock files of older drivers hold the pid alone
                raise UserError(f"--run-dir: {run_dir} is in use by another archbench {what} (pid {pid or '?'})") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.activity}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


# ---- the folder ----------------------------------------------------------------------------------
class RunFolder:
    """One run folder: where each of its files lives, and the operations on it as a whole."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def space_copy(self) -> Path:
        return self.path / SPACE_COPY

    @property
    def trials_dir(self) -> Path:
        return trials_dir(self.path)

    @property
    def study_path(self) -> Path:
        return self.path / STUDY_FILE

    @property
    def screen_pool_path(self) -> Path:
        return self.path / SCREEN_POOL_FILE

    @property
    def ray_log(self) -> Path:
        return self.path / RAY_LOG

    @property
    def ray_dir(self) -> Path:
        return self.path / RAY_DIR

    @property
    def interrupted_dir(self) -> Path:
        return self.path / INTERRUPTED_DIR

    @property
    def plan_path(self) -> Path:
        return self.path / PLAN_FILE

    @property
    def analysis_path(self) -> Path:
        return self.path / ANALYSIS_FILE

    @property
    def scatter_path(self) -> Path:
        return self.path / SCATTER_FILE

    def part_path(self, trial_id: str) -> Path:
        return part_path(self.path, trial_id)

    def part_files(self) -> list[Path]:
        """The trial parts in ``trials/``, sorted (temp files of writers in flight excluded)."""
        return sorted(self.trials_dir.glob(PART_GLOB))

    def recorded_trial_ids(self) -> list[str]:
        """The ids of every trial with a part, in ``trials/`` or set aside in ``interrupted/``."""
        parts = [*self.part_files(), *self.interrupted_dir.glob(PART_GLOB)]
        return sorted({p.name[len(PART_PREFIX) : -len(PART_SUFFIX)] for p in parts})

    @staticmethod
    def is_run(path: str | Path) -> bool:
        """Whether ``path`` looks like a run folder (a manifest, or a trials folder)."""
        path = Path(path)
        return (path / MANIFEST_FILE).is_file() or (path / TRIALS_DIR).is_dir()

    def holds_run(self) -> bool:
        """A manifest or at least one part: starting a new run here would mix two runs."""
        return self.manifest_path.exists() or bool(self.part_files())

    # ---- life cycle ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path) -> RunFolder:
        """The folder of a new run (created with its parents).

        Raises:
            UserError: it is a file, or already holds a run (the message names the folder and ``--resume``).
        """
        folder = cls.check_new(path)
        folder.path.mkdir(parents=True, exist_ok=True)
        return folder

    @classmethod
    def check_new(cls, path: str | Path) -> RunFolder:
        """The folder of a new run, checked but not created (see :meth:`create`)."""
        folder = cls(path)
        if folder.path.exists() and not folder.path.is_dir():
            raise UserError(f"--run-dir: {folder.path} is a file, not a folder")
        if folder.holds_run():
            raise UserError(f"--run-dir: {folder.path} already holds a run; pass --resume to continue it or choose another folder")
        return folder

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """The folder of an existing run.

        Raises:
            UserError: there is no manifest there.
        """
        folder = cls(path)
        if not folder.manifest_path.is_file():
            raise UserError(f"--run-dir: {folder.path} is not a run folder (no {MANIFEST_FILE})")
        return folder

    @classmethod
    def reopen(cls, path: str | Path | None, kind: str, *, what: str, lock: RunDirLock | None = None) -> tuple[RunFolder, Manifest]:
        """The folder and manifest of a run of ``kind`` to resume (``what`` names it: "a search"),
        locked with ``lock`` when given.

        Raises:
            UserError: no ``--run-dir``, no manifest there, a run of another kind, or a live driver on it.
        """
        if not path:
            raise UserError("--resume needs --run-dir of the run to continue")
        folder = cls.open(path)
        manifest = folder.read_manifest()
        if manifest.kind != kind:
            raise UserError(f"--run-dir: {folder.path} holds a {manifest.kind} run, not {what}")
        if lock is not None:
            lock.acquire(folder.path)
        return folder, manifest

    def lock(self, activity: str = DEFAULT_KIND) -> RunDirLock:
        """Take the folder's lock (release it with ``.release()``); ValueError if a live driver holds it."""
        lock = RunDirLock(activity)
        lock.acquire(self.path)
        return lock

    @contextlib.contextmanager
    def locked(self, activity: str = DEFAULT_KIND) -> Iterator[RunFolder]:
        lock = self.lock(activity)
        try:
            yield self
        finally:
            lock.release()

    def discard_unstarted(self) -> None:
        """Remove what a new run wrote before it could start (so the same command can be run again):
        only the run's own files, none if a trial was recorded, and the folder only if left empty."""
        if self.part_files():
            return
        for path in (self.manifest_path, self.space_copy, self.study_path, self.plan_path, self.ray_log, self.path / LOCK_FILE):
            path.unlink(missing_ok=True)
        for folder in (self.ray_dir, self.trials_dir):
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def set_aside(self, status: str = "interrupted") -> list[Path]:
        """Move the parts recorded with ``status`` from ``trials/`` to ``interrupted/``, so ``trials/``
        holds exactly the trials that ended; returns where they went."""
        from archbench.store.reader import read_part

        moved = []
        for path in self.part_files():
            try:
                recorded = read_part(path).column("status")[0].as_py()
            except Exception:
                continue  # an unreadable part is the reader's to report, not ours to move
            if recorded == status:
                self.interrupted_dir.mkdir(exist_ok=True)
                os.replace(path, self.interrupted_dir / path.name)
                moved.append(self.interrupted_dir / path.name)
        return moved

    def trial_statuses(self) -> dict[str, str]:
        """trial_id -> status of every readable part."""
        from archbench.store.reader import read_trials

        frame = read_trials(self.path, on_bad="skip")
        return dict(zip(frame["trial_id"], frame["status"]))

    # ---- manifest ------------------------------------------------------------------------------
    def write_manifest(self, manifest: Manifest, space_text: str | None = None) -> Path:
        """Atomically (re)write ``manifest.json``; the space copy is written once, beside it."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.manifest_path, json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n")
        if space_text is not None and not self.space_copy.exists():
            write_atomic(self.space_copy, space_text)
        return self.manifest_path

    def read_manifest(self) -> Manifest:
        """The manifest, validated.

        Raises:
            ValueError: no manifest (not a run folder), or one that is unreadable or invalid (one line).
        """
        data = self.read_manifest_data()
        if data is None:
            raise UserError(f"--run-dir: {self.path} is not a run folder (no {MANIFEST_FILE})")
        try:
            return Manifest.from_dict(data)
        except ValueError as err:
            raise UserError(f"{self.manifest_path}: unreadable manifest ({err})") from None

    def read_manifest_data(self) -> dict[str, Any] | None:
        """The manifest as a plain dict, for readers that make do with part of it (reports);
        None when there is none.

        Raises:
            ValueError: it is not a readable JSON object (``<path>: unreadable manifest (...)``).
        """
        if not self.manifest_path.is_file():
            return None
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"{self.manifest_path}: unreadable manifest ({' '.join(str(err).split())})") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.manifest_path}: unreadable manifest (not a JSON object)")
        return data


# Errors of the file system under a run folder, not of archbench: what the user can fix, in one line.
_FOLDER_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
}
# The same errors as SQLite words them (Optuna's storage goes through SQLAlchemy, which wraps them).
_SQLITE_MESSAGES = {
    "database or disk is full": "no space left on the device",
    "attempt to write a readonly database": "read-only file system",
    "unable to open database file": "cannot open the study's database",
    "disk i/o error": "disk I/O error",
}


class RunWrites:
    """A run's writes, guarded: a full disk, a read-only mount or a refused permission under the
    run folder ends as one line naming the folder (a :class:`FolderError`) instead of a traceback.

    What was written before stays (parts are written whole, the study commits per trial), so a
    run resumes once the problem is fixed; a new run that recorded no trial is removed, so the
    same command can simply be run again. Set ``path`` once the folder is created or reopened
    (only then is it the run's to remove); ``label`` names it before that.

    Example:
        >>> with RunWrites(resume=False, label="runs/x") as writes:  # doctest: +SKIP
        ...     writes.path = create_the_folder()
    """

    def __init__(self, *, resume: bool, label: str | Path | None = None) -> None:
        self.path: Path | None = None
        self.resume = resume
        self.label = label

    def __enter__(self) -> RunWrites:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> None:
        if err is None or isinstance(err, UserError):
            return
        why = folder_error(err)
        if why is None:
            return  # not the file system's: a bug keeps its traceback
        where = self.path or self.label or "the run folder"
        if self.path is not None and not self.resume:
            RunFolder(self.path).discard_unstarted()
        resumed = self.path or (Path(self.label) if self.resume and self.label else None)  # a resume's folder is the run's from the start
        kept = resumed is not None and RunFolder(resumed).holds_run()
        then = "what was written is kept: fix it and continue with --resume" if kept else "nothing was kept: fix it and run the command again"
        raise FolderError(f"{where}: cannot write the run folder ({why}); {then}") from err


class FolderError(UserError):
    """The file system refused a write under a run folder (full, read-only, permission)."""


def folder_error(err: BaseException) -> str | None:
    """What the file system refused, if ``err`` (or what it wraps) is a full disk, a read-only
    mount or a refused permission; None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FOLDER_ERRNOS:
            name = f": {current.filename}" if current.filename else ""
            return f"{_FOLDER_ERRNOS[current.errno]}{name}"
        text = str(current).lower()
        if type(current).__name__ == "OperationalError":  # sqlite3's, or SQLAlchemy's wrapping it
            for message, why in _SQLITE_MESSAGES.items():
                if message in text:
                    return why
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


def check_unchanged(stored: Mapping[str, Any], given: Mapping[str, Any], names: Iterable[str], *, run_dir: Path, changeable: Iterable[str]) -> None:
    """Refuse, on resume, a setting given with another value than the run's: a run keeps the
    settings it started with (its trials must stay comparable), so silently ignoring a new
    ``--epochs`` would mislead. ``names`` are the flat option names given on the command line.

    Raises:
        UserError: naming the option, the run's value and the value given.
    """
    for name in sorted(names):
        if name in given and given[name] != stored.get(name):
            allowed = ", ".join(option_flag(n) for n in sorted(changeable))
            raise UserError(
                f"{option_flag(name)}: the run in {run_dir} was started with {stored.get(name)!r}, got {given[name]!r}; "
                f"a resumed run keeps its settings (only {allowed} can change)"
            )


def option_flag(name: str) -> str:
    """The command-line flag of a flat option name (``time_budget_min`` is ``--time-budget``)."""
    return "--" + name.removesuffix("_min").replace("_", "-")


def manifest_objectives(data: Mapping[str, Any]) -> tuple[tuple[Objective, ...] | None, list[str]]:
    """The objectives of a manifest read as a dict, and the names of those this version does not know."""
    return objectives_from_records(data.get("objectives"))


__all__ = [
    "check_unchanged",
    "FolderError",
    "RunWrites",
    "folder_error",
    "option_flag",
    "DEFAULT_KIND",
    "ANALYSIS_FILE",
    "INTERRUPTED_DIR",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "MANIFEST_VERSION",
    "Manifest",
    "PART_GLOB",
    "PART_PREFIX",
    "PART_SUFFIX",
    "PLAN_FILE",
    "RAY_DIR",
    "RAY_LOG",
    "RunDirLock",
    "RunFolder",
    "SCATTER_FILE",
    "SCREEN_POOL_FILE",
    "SPACE_COPY",
    "STUDY_FILE",
    "TRIALS_DIR",
    "manifest_objectives",
    "part_path",
    "trials_dir",
]
