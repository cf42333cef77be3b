"""Subcommand modules of the `dynplayer` CLI, one per stage."""
