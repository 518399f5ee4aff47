"""Data-parallel plumbing for the trainer (torchrun + PyTorch's DistributedDataParallel).

``torchrun --nproc_per_node=P ... vsm train ...`` (or any script that builds a
:class:`vsm.train.Trainer` under torchrun): when ``WORLD_SIZE`` > 1 the trainer joins the process
group itself (:func:`init_distributed`: gloo on CPU, nccl on CUDA, one GPU per ``LOCAL_RANK``)
unless the caller already did, and each parameter group's objective runs through
:class:`~torch.nn.parallel.DistributedDataParallel` (:func:`wrap_group`): the encoder group and the
decoder group are each held by a small module whose forward evaluates that group's loss, DDP wraps
it (broadcasting rank 0's initial parameters) and ``loss.backward(inputs=group)`` lets DDP's
reducer average the group's gradients over the ranks, bucketed and overlapped with the backward
pass. The closed-form fast path (:mod:`vsm.train.fast_step`) has no backward pass: its gradients
are averaged by one ``all_reduce`` of a flat buffer per update (:func:`average_grads_`), and the
DDP wrappers then only broadcast rank 0's initial parameters.

Rank r trains on minibatch ``P·step + r`` (disjoint batches; an epoch has 1/P as many
iterations) with its own noise stream (:func:`reseed_rank`), so all ranks keep identical
parameters and optimiser states. Logged losses are means over ranks (:func:`reduce_stats`, one
small ``all_reduce`` per update that also carries the divergence and stop flags, so every rank
stops at the same step). In the bi-level variant each rank unrolls φ on its own batch and φ_K is
averaged over the ranks (:func:`average_`). Only rank 0 writes files, logs and shows a progress
bar; saving a checkpoint is a collective (:func:`gather_objects` collects every rank's RNG state).
Everything here is a no-op for a single process.

Teardown (:func:`shutdown`, :meth:`vsm.train.Trainer.close`): the process group that
:func:`init_distributed` created is destroyed, and freed, while Python is still fully alive: at the
end of ``vsm train`` and, for a script that does not close its trainer, from an :mod:`atexit`
handler. Left to interpreter shutdown, the group (kept alive by the DDP wrappers' reducers, which
sit in a reference cycle with the trainer) was freed during finalisation; gloo's worker threads,
joined by its destructor, then still released the last work objects, whose tensors need the GIL,
and a thread taking the GIL in a finalising interpreter is ended with ``pthread_exit``, whose
unwinding through C++ ``noexcept`` code aborts the process ("terminate called without an active
exception", SIGABRT). The threads lag the main thread most on a busy machine: this is the likely
cause of the rare rank-0 aborts of the DDP tests under load (issue 20), inferred from the abort's
message and PyTorch's account of it, not reproduced here (see docs/files_and_errors.md).
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "average_",
    "average_grads_",
    "gather_objects",
    "init_distributed",
    "reduce_stats",
    "reseed_rank",
    "shutdown",
    "unwrap",
    "wrap_group",
]

# Whether init_distributed created the default process group (then vsm also destroys it).
_owned = False


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process; joins the process group under torchrun.

    Without ``WORLD_SIZE`` > 1 in the environment (and no initialised group) this is (0, 1,
    device) and nothing happens. A bare "cuda" device becomes ``cuda:LOCAL_RANK``.
    """
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # e.g. --device cuda:1: every launch then targets that device
    if not dist.is_available():
        return 0, 1, device
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1, device
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _own_group()
    world = dist.get_world_size()
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def _own_group() -> None:
    """Note that vsm created the default group, and destroy it at exit at the latest."""
    global _owned
    if not _owned:
        atexit.register(shutdown)
    _owned = True


def shutdown(*, barrier: bool = False) -> None:
    """Destroy the process group that :func:`init_distributed` created (a no-op otherwise) and
    free it now, while the interpreter can still run the gloo threads' last releases.

    ``barrier``: first wait for every rank (the normal end of a run; not at exit after an error,
    when a rank may be gone). Drop the DDP wrappers first (:func:`unwrap`): their reducers hold
    the group.
    """
    global _owned
    if _owned and dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()
    _owned = False
    gc.collect()  # frees the reducers and the group (their cycles with the trainer), joining threads


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper of :func:`wrap_group` (itself when not wrapped)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


class GroupObjective(nn.Module):
    """One parameter group (held by reference) and the loss that updates it.

    ``forward(x)`` evaluates ``loss_fn(x)``. The module exists so that PyTorch's
    :class:`~torch.nn.parallel.DistributedDataParallel` can wrap exactly one group: DDP syncs the
    parameters it owns (this group) and ignores the other group's, which the loss also uses but
    which ``backward(inputs=group)`` leaves untouched.
    """

    def __init__(self, params: list[nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.group = nn.ParameterList(params)
        self.loss_fn = loss_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(x)


def wrap_group(
    params: list[nn.Parameter],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    world_size: int,
    device: torch.device,
    find_unused: bool,
) -> nn.Module:
    """The group's objective module, wrapped in DDP when data-parallel (which broadcasts rank 0's
    parameters at construction)."""
    module = GroupObjective(params, loss_fn)
    if world_size == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def reseed_rank(seed: int, rank: int, step: int) -> None:
    """Distinct noise streams per rank (data-parallel runs, or a resume on another rank count)."""
    torch.manual_seed(seed + 1_000_003 * rank + 7919 * step + 1)


def reduce_stats(stats: torch.Tensor, world_size: int) -> list[float]:
    """[mean loss over ranks, *sums of the flags over ranks] of a float64 (1 + k,) stats tensor."""
    if world_size > 1:
        dist.all_reduce(stats)
        stats[0] /= world_size
    return stats.tolist()


def average_(params: list[torch.Tensor], world_size: int) -> None:
    """Replace each tensor (in place, no grad) by its mean over the ranks."""
    if world_size == 1:
        return
    with torch.no_grad():
        for p in params:
            dist.all_reduce(p)
            p /= world_size


def average_grads_(params: list[nn.Parameter], world_size: int) -> None:
    """Replace each parameter's ``.grad`` by its mean over the ranks, in one ``all_reduce`` of a
    flat buffer (the closed-form fast path's counterpart of DDP's reducer; a missing gradient
    counts as zero and stays missing only if it is missing on every rank)."""
    if world_size == 1 or not params:
        return
    with torch.no_grad():
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n


def gather_objects(obj: Any, world_size: int) -> list[Any] | None:
    """Every rank's ``obj`` (a collective), or None for a single process."""
    if world_size == 1:
        return None
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out
