"""The one `dynplayer` command. Subcommands are thin adapters over library functions.

Each area registers its subcommands from `dynplayer.commands.<area>`; a user mistake
(`DynplayerError`) is printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

import typer

from dynplayer.commands import data as data_commands
from dynplayer.commands import evaluate as evaluate_commands
from dynplayer.commands import serve as serve_commands
from dynplayer.commands import text as text_commands
from dynplayer.commands import train as train_commands
from dynplayer.commands.bench import bench_app
from dynplayer.errors import DynplayerError

app = typer.Typer(
    name="dynplayer",
    help="Learn which music belongs together from playlists, and recommend from it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (data_commands, train_commands, evaluate_commands, text_commands, serve_commands):
    module.register(app)
app.add_typer(bench_app, name="bench")


def _terminated(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (`kill PID`, a service manager) unwinds like Ctrl-C: `finally` blocks and atexit
    hooks run, so the embedded PostgreSQL handle is released and the server stopped. Python's
    default for SIGTERM ends the process at once; uvicorn, which catches SIGTERM while serving,
    raises it again after its shutdown, and that too ended here before any cleanup."""
    print("dynplayer: terminated", file=sys.stderr)
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point: run the app, turning user errors into one-line messages."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        app(standalone_mode=True)
    except DynplayerError as err:
        print(f"dynplayer: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("dynplayer: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
