"""What the evaluation stage can afford at scale: EASE's dense item x item matrices against the
memory this machine has available."""

from __future__ import annotations

from dynplayer.machine import available_memory_bytes


def ease_memory_bytes(n_playlists: int, n_items: int) -> int:
    """Peak bytes of `ease_weights`: with n >= V, the float64 Gram matrix, the float64 solve of
    the identity and its float32 copy (20 V^2); with n < V, two float64 n x n matrices, the
    float32 V x n product and two float32 V x V matrices."""
    n, v = n_playlists, n_items
    if n < v:
        return 16 * n * n + 4 * v * n + 8 * v * v
    return 20 * v * v


def ease_fits(n_playlists: int, n_items: int, available: int = 0) -> tuple[bool, str]:
    """Whether EASE's matrices fit in half of `available` bytes (0: this machine's available
    memory); the one-line reason when not."""
    need = ease_memory_bytes(n_playlists, n_items)
    avail = available or available_memory_bytes()
    if need <= avail / 2:
        return True, ""
    return False, (f"EASE skipped: its {n_items:,} x {n_items:,} item matrices need "
                   f"{need / 2**30:.1f} GiB, more than half of the {avail / 2**30:.1f} GiB "
                   "available")
