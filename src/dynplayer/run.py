"""The run directory: what `dynplayer train` writes and every later stage reads.

Layout (RUN_DIR):
  vectors.npy      float32 (N, d), L2-normalised track vectors, row r = track ids.txt line r
  ids.txt          the N external track ids, one per line
  config.json      the resolved config, with `corpus_dir` (absolute, or relative to RUN_DIR) and
                   `corpus_hash`
  manifest.json    `dynplayer update` / long-tail fold-in: trained rows, and each update's
                   version, inputs, counts and the rows it added (absent on a plain run)
  corpus/          an updated run's own corpus (the trained corpus + every update's playlists)
  metrics.json     training metrics (per-epoch losses, validation Recall@10, timings)
  checkpoint.pt    model + optimizer state + config (for resume)
  text/            the caption <-> playlist model (`dynplayer train-text`)
  eval/            `dynplayer evaluate` output (metrics.json, report, plots)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dynplayer.errors import ArtifactError

# Part of every model version, so a change of the store's table layout makes new versions.
MODEL_VERSION_SALT = "store-schema-3"  # 3: tracks gained genre, map_x, map_y


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, then rename over `path`."""
    atomic_write_stream(path, lambda fh: fh.write(data))


def atomic_write_stream(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write(fh)` into a temporary file in the same directory, then rename over `path`: the
    content goes straight to the file (no second copy of a large artifact in memory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give artifacts the usual permissions under the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def staging_directory(parent: Path, prefix: str, like: Path | None = None) -> Path:
    """A new temporary directory in `parent` with the mode `like` has (when it exists), else
    the usual one under the umask: mkdtemp's 0700 would otherwise become the mode of every
    directory swapped in from it (a corpus or run others could not read)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if like is not None and like.is_dir():
        mode = like.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o777 & ~umask
    os.chmod(tmp, mode)
    return tmp


@contextmanager
def atomic_directory(out: Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling and swap it in place of `out` on success.

    On any error the temporary directory is removed and an existing `out` is left untouched;
    readers never see a half-written directory at `out`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_directory(out.parent, f".{out.name}.tmp-", like=out)
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write_stream(path, lambda fh: np.save(fh, arr, allow_pickle=False))


def atomic_save_npy_blocks(path: Path, shape: tuple[int, int], dtype: Any,
                           blocks: Iterable[tuple[int, np.ndarray]]) -> None:
    """An .npy of `shape` written block by block ((first row, rows) in order, covering every
    row once): the same file as `atomic_save_npy` of the stacked array, without that array."""
    dtype = np.dtype(dtype)

    def write(fh: BinaryIO) -> None:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                  "fortran_order": False, "shape": shape})
        at = 0
        for start, block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            if start != at or block.shape[1:] != shape[1:]:
                raise ValueError(f"{path}: block at row {start} of shape {block.shape} "
                                 f"does not follow row {at} of {shape}")
            fh.write(block.tobytes())
            at += block.shape[0]
        if at != shape[0]:
            raise ValueError(f"{path}: blocks covered {at} of {shape[0]} rows")

    atomic_write_stream(path, write)


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def unit_rows(v: np.ndarray) -> np.ndarray:
    """`l2_normalize(v)`, but `v` itself (as float32, not copied) when its rows are unit
    vectors already, as a run's vectors are: loading a whole-catalogue run (166k x 256) no
    longer copies and divides 170 MB at every step that wants unit rows. Callers must not
    write into the result."""
    v = np.asarray(v, dtype=np.float32)
    if v.ndim == 2 and v.shape[0]:
        sq = np.einsum("ij,ij->i", v, v)
        if float(np.abs(sq - 1.0).max()) <= 1e-4:
            return v
    return l2_normalize(v)


@dataclass
class Run:
    """Track vectors and ids of a trained run, plus its config."""

    path: Path
    vectors: np.ndarray  # float32 (N, d), L2-normalised
    ids: list[str]
    config: dict[str, Any]

    @property
    def corpus_dir(self) -> Path:
        if "corpus_dir" not in self.config:
            raise ArtifactError(f"{self.path}: config.json does not name its corpus_dir")
        # Relative to the run directory when not absolute: an updated run holds its own corpus
        # (RUN_DIR/corpus, `dynplayer update`), so the run stays valid wherever it is moved.
        return self.path / Path(self.config["corpus_dir"])

    def index_of(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.ids)}


def save_vectors(run_dir: Path, vectors: np.ndarray, ids: list[str]) -> None:
    """Write vectors.npy (L2-normalised float32) and ids.txt atomically."""
    if vectors.shape[0] != len(ids):
        raise ValueError(f"{vectors.shape[0]} vectors but {len(ids)} ids")
    atomic_save_npy(run_dir / "vectors.npy", l2_normalize(vectors))
    atomic_write_bytes(run_dir / "ids.txt", ("\n".join(ids) + "\n").encode())


PARTS_DIR = "parts"


def save_parts(run_dir: Path, parts: dict[str, tuple[np.ndarray, list[str]]]) -> None:
    """Write the shared parts' vectors (`RUN_DIR/parts/<name>.npy`, L2-normalised float32)
    and the value of each row (`<name>.json`, e.g. the artist names) atomically."""
    if not parts:
        return
    d = Path(run_dir) / PARTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    for name, (vectors, values) in parts.items():
        if vectors.shape[0] != len(values):
            raise ValueError(f"part {name}: {vectors.shape[0]} vectors but {len(values)} values")
        atomic_save_npy(d / f"{name}.npy", l2_normalize(vectors))
        atomic_write_bytes(d / f"{name}.json", json.dumps(values, ensure_ascii=False).encode())


def load_parts(run_dir: Path) -> dict[str, tuple[np.ndarray, list[str]]]:
    """The shared parts a run was trained with (`save_parts`); {} when it has none."""
    d = Path(run_dir) / PARTS_DIR
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.npy")):
        values_file = f.with_suffix(".json")
        try:
            vectors = np.load(f, allow_pickle=False).astype(np.float32)
            values = json.loads(values_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{f}: damaged shared part ({exc})") from exc
        if not isinstance(values, list) or len(values) != vectors.shape[0]:
            raise ArtifactError(f"{values_file}: does not match {f.name}")
        out[f.stem] = (vectors, [str(v) for v in values])
    return out


def check_run_dir(run_dir: Path) -> Path:
    """`run_dir` when it is a run directory; else the one-line error every command gives, so
    a command can check its argument before loading anything."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ArtifactError(f"{d}: run directory not found (run `dynplayer train` first)")
    missing = [f for f in ("vectors.npy", "ids.txt", "config.json") if not (d / f).exists()]
    if missing:
        raise ArtifactError(f"{d}: not a run directory (missing {', '.join(missing)})")
    return d


def load_run(run_dir: Path) -> Run:
    """Read a run directory written by `dynplayer train`."""
    d = check_run_dir(run_dir)
    vectors = np.load(d / "vectors.npy", allow_pickle=False)
    ids = (d / "ids.txt").read_text().splitlines()
    if vectors.shape[0] != len(ids):
        raise ArtifactError(f"{d}: vectors.npy has {vectors.shape[0]} rows, ids.txt {len(ids)}")
    return Run(path=d, vectors=vectors.astype(np.float32, copy=False), ids=ids,
               config=read_run_config(d))


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/config.json, or the one-line error naming it when it does not read."""
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable run config ({exc})") from exc
    if not isinstance(config, dict):
        raise ArtifactError(f"{path}: the run config is not a JSON object")
    return config


def _version_files(d: Path) -> list[Path]:
    files = [d / "vectors.npy", d / "ids.txt"]
    text = d / "text"
    if text.is_dir():
        files += sorted(p for p in text.rglob("*") if p.is_file())
    return files


def run_version(run_dir: Path) -> str:
    """Content hash of a run's vectors, ids and text model: the model version.

    Hashing a whole-catalogue run reads ~200 MB (0.5 s of every CLI call), so the hash is
    remembered beside each file's size and mtime in the data directory (DYNPLAYER_DATA_DIR,
    else the user data dir: `cache/run-versions/`, one file per run path; never in the run
    directory, which a read must not change) and computed again whenever any of them differs
    or the memo is unreadable or cannot be written."""
    import platformdirs

    d = Path(run_dir).resolve()
    files = _version_files(d)
    stamp = [[str(f.relative_to(d)), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    root = Path(os.environ.get("DYNPLAYER_DATA_DIR") or platformdirs.user_data_dir("dynplayer"))
    memo = (root / "cache" / "run-versions"
            / (hashlib.sha256(str(d).encode()).hexdigest()[:24] + ".json"))
    try:
        saved = json.loads(memo.read_text())
        if saved.get("salt") == MODEL_VERSION_SALT and saved.get("files") == stamp:
            return str(saved["version"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    h = hashlib.sha256(MODEL_VERSION_SALT.encode())
    text = d / "text"
    for f in files:
        if f.parent == d:
            h.update(f.read_bytes())
        else:
            h.update(str(f.relative_to(text)).encode())
            h.update(f.read_bytes())
    version = h.hexdigest()[:16]
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(memo, json.dumps({"salt": MODEL_VERSION_SALT, "files": stamp,
                                             "version": version}).encode())
    except OSError:
        pass  # a read-only run directory: hash each time
    return version
