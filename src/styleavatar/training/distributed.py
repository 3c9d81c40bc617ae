"""Data-parallel training across processes started by ``torchrun`` (NCCL on GPUs, gloo on CPUs).

Each process draws its own batches; gradients are averaged with one all-reduce per network before the
optimiser step, so every replica applies the same update and the weights stay identical.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every process."""
    if info.world > 1:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` (any picklable value made by this program, never read from a file) on every process."""
    if info.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_gradients(module: nn.Module, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``module`` in one flat buffer."""
    if info.world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def agree(flags: list[bool], info: DistInfo, device: torch.device) -> list[bool]:
    """Rank 0's decisions (stop, snapshot, ...) for every process, so time-based events happen together."""
    if info.world == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.broadcast(t, src=0)
    return [bool(v) for v in t.tolist()]


def shutdown(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def replica_difference(module: nn.Module, info: DistInfo) -> float:
    """Largest |difference| between any process's parameters and rank 0's (0 for one process)."""
    if info.world == 1:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).float() for p in module.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)
