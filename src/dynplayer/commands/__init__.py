"""The `dynplayer` CLI's subcommands, one module per stage: thin adapters that parse options,
call one library function, and print. Owns no logic of its own; may import every package (it
is the top layer), and no library package may import it."""
