"""Models: the track embedding table and the losses it is trained with."""
