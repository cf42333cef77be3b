"""Where training runs: the device ("auto" = CUDA when present) and, under `torchrun`, the
process group (gloo on CPU, NCCL on GPU) with this process's rank."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dynplayer.errors import ConfigError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, dist_info: Dist | None = None) -> torch.device:
    """"auto" is CUDA when present, else CPU; under torchrun each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA device is available")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local if dist_info and dist_info.world > 1 else 0)
    return torch.device("cpu")


def init_distributed(device_name: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())
