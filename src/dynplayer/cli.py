"""The one `dynplayer` command. Subcommands are thin adapters over library functions.

Each area registers its subcommands from `dynplayer.commands.<area>`; a user mistake
(`DynplayerError`) is printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

import typer

from dynplayer.commands import data as data_commands
from dynplayer.commands import evaluate as evaluate_commands
from dynplayer.commands import library as library_commands
from dynplayer.commands import rank as rank_commands
from dynplayer.commands import scale as scale_commands
from dynplayer.commands import serve as serve_commands
from dynplayer.commands import text as text_commands
from dynplayer.commands import train as train_commands
from dynplayer.commands import update as update_commands
from dynplayer.commands import variety as variety_commands
from dynplayer.commands.bench import bench_app
from dynplayer.errors import DynplayerError

app = typer.Typer(
    name="dynplayer",
    help="Learn which music belongs together from playlists, and recommend from it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no <bool> placeholders, [data] not read as markup
)

for module in (data_commands, train_commands, evaluate_commands, text_commands, serve_commands,
               update_commands, scale_commands, rank_commands, variety_commands,
               library_commands):
    module.register(app)
app.add_typer(bench_app, name="bench")


def _terminated(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (`kill PID`, a service manager) unwinds like Ctrl-C: `finally` blocks and atexit
    hooks run, so the embedded PostgreSQL handle is released and the server stopped. Python's
    default for SIGTERM ends the process at once; uvicorn, which catches SIGTERM while serving,
    raises it again after its shutdown, and that too ended here before any cleanup."""
    print("dynplayer: terminated", file=sys.stderr)
    raise SystemExit(128 + signum)


def _plain_placeholders(command: Any) -> Any:
    """Help as users read it: arguments named in capitals (`CORPUS_DIR`, where Typer shows
    `{corpus_dir}`); with plain (not rich) help, flags show no `<bool>` placeholder and
    `[data]` in a help text is not swallowed as markup. (Typer vendors its own click, so the
    parameters are told apart by `param_type_name`.)"""
    for param in command.params:
        kind = getattr(param, "param_type_name", "")
        if kind == "argument" and param.metavar is None:
            param.metavar = (param.name or "arg").upper()
        elif kind == "option" and param.metavar is None and not getattr(param, "is_flag", False):
            # `--out OUT` (argparse's style) where Typer writes `--out <path>`, `<list[Path]>`
            param.metavar = (param.name or "value").rstrip("_").upper()
    for sub in getattr(command, "commands", {}).values():
        _plain_placeholders(sub)
    return command


def _usage_name(self: Any) -> str:
    """An argument in the usage line as click writes it (`CORPUS_DIR`, `[QUERY]`, `INPUTS...`);
    Typer 0.29 writes a required one as `{corpus_dir}`, which reads as an unfilled template."""
    name = str(self.display_name_raw)
    return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")


if hasattr(typer.core.TyperArgument, "_usage_display_name"):
    typer.core.TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]


def main() -> None:
    """Entry point: run the app, turning user errors into one-line messages."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _plain_placeholders(typer.main.get_command(app))(standalone_mode=True)
    except DynplayerError as err:
        print(f"dynplayer: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("dynplayer: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
