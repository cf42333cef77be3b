"""The one `dynplayer` command. Subcommands are thin adapters over library functions.

Each area registers its subcommands from `dynplayer.commands.<area>`; a user mistake
(`DynplayerError`) is printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from dynplayer.commands import data as data_commands
from dynplayer.commands import evaluate as evaluate_commands
from dynplayer.commands import rank as rank_commands
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

for module in (data_commands, train_commands, evaluate_commands, text_commands, serve_commands,
               rank_commands):
    module.register(app)
app.add_typer(bench_app, name="bench")


def main() -> None:
    """Entry point: run the app, turning user errors into one-line messages."""
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
