"""An updatable run directory: its manifest (what was folded in and each update) and the
all-or-nothing exchange of a rewritten copy with the run."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dynplayer.errors import ArtifactError
from dynplayer.run import Run, staging_directory

MANIFEST = "manifest.json"
RUN_CORPUS = "corpus"  # an updated run's own corpus, relative to RUN_DIR

# ---- the manifest -----------------------------------------------------------------------------


def read_manifest(run: Run) -> dict[str, Any]:
    """RUN_DIR/manifest.json, or the implicit one of a run never updated."""
    path = run.path / MANIFEST
    if path.exists():
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: unreadable run manifest ({exc})") from exc
    return {"trained_rows": len(run.ids), "folded": [], "updates": []}


# ---- the run directory, exchanged whole -------------------------------------------------------


def _link_tree(src: Path, dst: Path, skip: set[str]) -> None:
    """Hard-link every file of src into dst (directories recreated); copy where links fail."""
    dst.mkdir(exist_ok=True)
    for entry in os.scandir(src):
        if entry.name in skip:
            continue
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False):
            _link_tree(Path(entry.path), target, set())
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        else:
            try:
                os.link(entry.path, target)
            except OSError:
                shutil.copy2(entry.path, target)


_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); two renames elsewhere."""
    libc_name = ctypes.util.find_library("c")
    fn = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name \
        else None
    if fn is not None:
        at_fdcwd = -100
        if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)),
              _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (22, 38, 95):  # EINVAL / ENOSYS / EOPNOTSUPP: fall back below
            raise OSError(err, os.strerror(err), str(a))
    side = a.parent / f".{a.name}.swap-{os.getpid()}"
    os.rename(a, side)
    os.rename(b, a)
    os.rename(side, b)


@contextmanager
def staged_run(run_dir: Path, rewritten: set[str]) -> Iterator[Path]:
    """A copy of `run_dir` (hard links, without the `rewritten` entries) to write into; it is
    exchanged with `run_dir` in one rename when the block succeeds, removed otherwise."""
    tmp = staging_directory(run_dir.resolve().parent, f".{run_dir.name}.update-",
                            like=run_dir)
    try:
        _link_tree(run_dir, tmp, rewritten)
        yield tmp
        exchange(run_dir, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


