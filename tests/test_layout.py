"""The package layering that each package's docstring states, and the module size limit: checked
on the source, so a new import across a layer or a module grown past a reader fails here."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "dynplayer"
# package -> the Dynplayer packages it must not import (see each package's __init__ docstring)
FORBIDDEN = {
    "data": {"train", "eval", "text", "store", "serve", "commands"},
    "eval": {"train", "text", "store", "serve", "commands"},
    "model": {"data", "train", "eval", "text", "store", "serve", "commands"},
    "text": {"train", "store", "serve", "commands"},
    "train": {"text", "store", "serve", "commands"},
    "store": {"serve", "train", "eval", "commands"},
    "serve": {"commands"},
    "library": {"train", "store", "serve", "update", "commands"},
}
MAX_LINES = 450  # "no module over ~400 lines"


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("dynplayer.")}


def test_packages_respect_their_layers() -> None:
    broken = []
    for f in sorted(SRC.rglob("*.py")):
        parts = f.relative_to(SRC).parts
        if len(parts) < 2:
            continue
        for module in _imports(f):
            if module.split(".")[1] in FORBIDDEN.get(parts[0], set()):
                broken.append(f"{f.relative_to(SRC)} imports {module}")
    assert broken == []


def test_no_module_cycles_between_text_search_and_train() -> None:
    assert not any(m.startswith("dynplayer.text.train") for m in _imports(SRC / "text/search.py"))
    assert not any(m.startswith("dynplayer.text.search") for m in _imports(SRC / "text/train.py"))


def test_modules_stay_readable() -> None:
    long = {str(f.relative_to(SRC)): n for f in SRC.rglob("*.py")
            if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_package_says_what_it_owns() -> None:
    for init in SRC.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 60, init
