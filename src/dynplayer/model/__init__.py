"""Models: the track embedding table and the losses it is trained with (losses take features
and return a dict of named terms). Imports torch and nothing of Dynplayer's but `errors`."""
