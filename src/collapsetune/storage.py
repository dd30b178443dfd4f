"""Reading and writing a sweep's own small files (the resolved sweep, launch facts) in its
results folder, which may be a local path or a URI Ray writes to (s3://, gs://, file://).
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs

from collapsetune.errors import SpecError

LOCK_FILE = ".driver.lock"  # held by the driver that runs or resumes the sweep in this folder


def location(results: str) -> str:
    """A results folder as Ray and MLflow name it: a URI as given (no trailing /), a local path
    with `~` expanded and made absolute against the cwd.

    The one resolver for `storage:` and for results folders: `run`, `resume`, `report` and
    `collapsetune.preflight` all go through it, so `storage: ~/results` means the home folder.

    Example:
        >>> location("s3://bucket/results/")
        's3://bucket/results'
    """
    if "://" in results:
        return results.rstrip("/")
    return str(Path(results).expanduser().resolve())


def _filesystem(folder: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if "://" in folder:
        return pyarrow.fs.FileSystem.from_uri(folder)
    return pyarrow.fs.LocalFileSystem(), location(folder)


def write_text(folder: str, name: str, text: str) -> None:
    fs, root = _filesystem(folder)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{name}") as out:
        out.write(text.encode())


def read_text(folder: str, name: str) -> str:
    """The file's text; a SpecError naming the folder when it is not a sweep's results folder."""
    try:
        fs, root = _filesystem(folder)  # a URI's filesystem may fail to open (no such bucket, no network)
        with fs.open_input_stream(f"{root}/{name}") as stream:
            return stream.read().decode()
    except (FileNotFoundError, OSError, pyarrow.ArrowException) as exc:
        raise SpecError(
            f"no {name} here: not a collapsetune results folder ({exc.__class__.__name__})", file=folder
        ) from None


def new_folder(parent: str, name: str) -> str:
    """A results folder no other launch has: `parent/name`, else `parent/name-2`, `-3`, ...

    Local folders are made with an exclusive mkdir, so two launches in the same second
    never share one. For a URI the check and the first write are separate steps: two
    drivers racing on the same second can still meet there.
    """
    fs, root = _filesystem(parent)
    fs.create_dir(root, recursive=True)
    for n in range(1, 1000):
        folder = f"{root}/{name}" if n == 1 else f"{root}/{name}-{n}"
        if isinstance(fs, pyarrow.fs.LocalFileSystem):
            try:
                os.mkdir(folder)
            except FileExistsError:
                continue
        elif fs.get_file_info(folder).type != pyarrow.fs.FileType.NotFound:
            continue
        return folder if "://" not in parent else f"{parent.rstrip('/')}/{folder.rsplit('/', 1)[1]}"
    raise SpecError(f"999 results folders named {name}-N already exist", file=parent)


@contextlib.contextmanager
def driver_lock(folder: str) -> Iterator[None]:
    """Holds the results folder for one driver (`run` or `resume`) while it lives.

    A second driver on the same folder fails at once, naming the first. The lock is an OS
    file lock, so a killed driver leaves none behind. On a URI there is no lock: two
    drivers must not resume the same remote folder at once.
    """
    if "://" in folder:
        yield
        return
    path = Path(folder) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SpecError(f"another collapsetune driver ({holder}) is running or resuming this sweep; "
                            "wait for it to end, or stop it first", file=folder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_if_unstarted(folder: str) -> bool:
    """Removes a results folder that holds only what a launch writes before its first trial
    (sweep.yaml, launch.json, the driver lock, Ray's and Optuna's set-up files): with no trial
    folder and no experiment snapshot nothing in it can be resumed or reported. Returns
    whether it was removed."""
    fs, root = _filesystem(folder)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    if any(i.type == pyarrow.fs.FileType.Directory or fnmatch.fnmatch(i.base_name, "experiment_state-*")
           for i in infos):
        return False
    fs.delete_dir(root)
    return True


def experiment_states(folder: str) -> list[tuple[str, str]]:
    """Ray's experiment snapshots in a results folder, (file name, text), oldest first."""
    fs, root = _filesystem(folder)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root))
    names = sorted(i.base_name for i in infos if fnmatch.fnmatch(i.base_name, "experiment_state-*.json"))
    out = []
    for name in names:
        with fs.open_input_stream(f"{root}/{name}") as stream:
            out.append((name, stream.read().decode(errors="replace")))
    return out


def lacks_space(folder: str) -> bool:
    """Whether a local results folder's filesystem is (nearly) full: less than `ROOM` bytes
    free, too little for Ray's next experiment snapshot and a trial's checkpoint. A URI's
    store is not asked (its writes fail with the store's own error)."""
    if "://" in folder:
        return False
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < ROOM


ROOM = 1 << 20  # bytes a results folder needs free to go on (`lacks_space`)


def rename(folder: str, name: str, new_name: str) -> None:
    fs, root = _filesystem(folder)
    fs.move(f"{root}/{name}", f"{root}/{new_name}")
