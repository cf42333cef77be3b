"""Typed, frozen configuration per stage: TOML file plus `--set section.key=value` overrides."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from dynplayer.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class DataConfig:
    """How a corpus is derived from raw playlists."""

    window: int = 10  # co-occurrence window in positions
    # Which tracks are trained (data/selection.py): "min_playlists" (every track in at least
    # `min_playlists` training playlists: the whole catalogue a model can learn from),
    # "top_share" (the seed's rule: the top `select_fraction` by neighbour count) or
    # "min_neighbours" (at least `select_min_neighbours` neighbours).
    # min_playlists 1 (every track of a training playlist) won on MPD validation, field protocol,
    # with the artist part shared: R-precision 0.1528 against 0.1486 at 2 and 0.1422 at 3
    # (docs/experiments.md); at 2 the vocabulary is a third (53k of the slices' 166k).
    select: str = "min_playlists"
    min_playlists: int = 1
    select_fraction: float = 0.05  # top_share, and the seed protocol's vocabulary (the head)
    select_min_neighbours: int | None = None  # min_neighbours
    val_fraction: float = 0.1
    test_fraction: float = 0.15
    heldout_fraction: float = 0.5
    seed: int = 0
    n_genres: int = 51


def _coerce(value: str, typ: Any, key: str) -> Any:
    text = str(typ)
    try:
        if typ is bool or text == "bool":
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if value.lower() in {"none", "null"} and "None" in text:
            return None
        if typ is int or text.startswith("int"):
            return int(value)
        if typ is float or text.startswith("float"):
            return float(value)
        if "int" in text and "float" not in text:
            return int(value)
        if "float" in text:
            return float(value)
        if "list" in text or "tuple" in text:
            parsed = json.loads(value)
            return tuple(parsed) if "tuple" in text else list(parsed)
        return value
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config key '{key}': cannot read {value!r} as "
                          f"{_kind(typ, text)}") from exc


def _kind(typ: Any, text: str) -> str:
    """A field type as a user reads it: 'an integer', not "<class 'int'>"."""
    kind = ("true or false" if typ is bool or "bool" in text else
            "a JSON list" if "list" in text or "tuple" in text else
            "a number" if "float" in text else
            "an integer" if typ is int or "int" in text else "text")
    return kind + (" (or none)" if "None" in text and kind != "text" else "")


def apply_overrides(cfg: T, overrides: dict[str, Any], *, prefix: str = "") -> T:
    """Return a copy of the dataclass `cfg` with `overrides` (flat keys, nested with dots) applied.

    Values may be strings (from `--set`) and are coerced to the field type. An unknown key is an
    error naming the key and the known ones.
    """
    assert is_dataclass(cfg) and not isinstance(cfg, type)
    hints = get_type_hints(type(cfg))
    known = {f.name for f in fields(cfg)}
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in known:
            raise ConfigError(
                f"unknown config key '{prefix}{head}' (known: {', '.join(sorted(known))})"
            )
        if rest:
            nested.setdefault(head, {})[rest] = value
            continue
        current = getattr(cfg, head)
        if is_dataclass(current) and isinstance(value, dict):
            nested.setdefault(head, {}).update(value)
            continue
        if isinstance(value, str):
            value = _coerce(value, hints[head], prefix + head)
        changes[head] = value
    for head, sub in nested.items():
        changes[head] = apply_overrides(getattr(cfg, head), sub, prefix=f"{prefix}{head}.")
    return dataclasses.replace(cfg, **changes)


def parse_set_options(items: list[str] | None) -> dict[str, str]:
    """Parse repeated `--set key=value` options into a flat dict."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file; a clear error if it is missing or malformed."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def section(table: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """The `[name]` table of a config file read by `load_toml`, or the whole file when it has
    none (flat keys); a ConfigError when `name` is there but is not a table."""
    if name not in table:
        return table
    value = table[name]
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{name}' must be a table ([{name}] with key = value lines), "
                          f"got {type(value).__name__} {value!r:.40}")
    return value


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve(cfg: T, file: Path | None = None, sets: list[str] | None = None) -> T:
    """Defaults <- TOML file <- `--set` overrides."""
    if file is not None:
        cfg = apply_overrides(cfg, flatten(load_toml(file)))
    return apply_overrides(cfg, parse_set_options(sets))


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config dataclass from `to_dict` output, ignoring keys it does not know."""
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        typ = hints[f.name]
        if isinstance(typ, type) and is_dataclass(typ) and isinstance(value, dict):
            value = from_dict(typ, value)
        elif isinstance(value, list) and "tuple" in str(typ):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


__all__ = [
    "DataConfig",
    "apply_overrides",
    "field",
    "from_dict",
    "parse_set_options",
    "resolve",
    "section",
    "to_dict",
]


def budget_epochs(epochs: int, budget: int, n_playlists: int, minimum: int = 1) -> int:
    """Epochs of a fit over `n_playlists` training playlists that sees at most `budget` of them
    (floor(budget / n_playlists)), at least `minimum`, at most `epochs`; budget 0: `epochs`.
    The track model's members and the text model share it."""
    if budget <= 0 or n_playlists <= 0:
        return epochs
    return min(epochs, max(minimum, budget // n_playlists))
