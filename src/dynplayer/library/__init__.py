"""A listener's own music: a library read from a Subsonic / OpenSubsonic server, a folder of
audio files or an export (`records`, `tags`, `subsonic`), matched to a run's catalogue
(`tagkeys`, `match`), stored with the run (`store`, `importer`), placed in the track space
(`placement`), answered from (`answers`: mixes and continuations; `explore`: free text and
discover), written back to the server (`writeback`), and benchmarked (`simulate`, `bench`).

May import `data`, `run`, `names`, `ids`, `eval`, `rank` and `text`; must not import `train`,
`store`, `serve`, `update` or `commands` (serving and the CLI sit on top of it)."""
