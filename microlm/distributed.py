"""Multi-process training under torchrun: process group, DDP wrap, per-rank data, agreement."""

from __future__ import annotations

import gc
import io
import os
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def launched_by_torchrun() -> bool:
    """True in a process torchrun started as one of several ranks (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_distributed() -> bool:
    """True once a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or a plain single process): the one that prints and writes checkpoints."""
    return rank() == 0


def local_device(preference: str | None) -> str | None:
    """The device of this rank: with CUDA, cuda:LOCAL_RANK (one GPU per process)."""
    if not launched_by_torchrun():
        return preference
    wants_cuda = preference in (None, "", "auto") and torch.cuda.is_available()
    if wants_cuda or (preference or "").startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available() and local_rank >= torch.cuda.device_count():
            raise ValueError(f"This rank's LOCAL_RANK is {local_rank} but the machine has "
                             f"{torch.cuda.device_count()} GPU(s); start torchrun with "
                             f"--nproc_per_node at most the number of GPUs.")
        return f"cuda:{local_rank}"
    return preference


def init_from_environment(device: str | torch.device) -> bool:
    """Join torchrun's process group (env:// rendezvous): nccl on CUDA, gloo otherwise.

    Returns True when this process is one of several ranks; False (and does nothing) in a
    plain single process, so callers need no special case.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return is_distributed()
    _import_group_defaults()
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return True


def _import_group_defaults() -> None:
    """Import, before any process group exists, the modules that capture one for good.

    `torch.distributed.nn.functional` takes `group=group.WORLD` as a default argument,
    evaluated when it is first imported: imported after init (torch._dynamo imports it,
    and the DDP constructor and the first optimizer import torch._dynamo), it keeps the
    live group, and with it gloo's worker threads, until the interpreter is torn down.
    A gloo thread that then frees a finished collective needs the GIL of a finalising
    interpreter and aborts the process (SIGABRT) after a run that had succeeded.
    Imported now, the default is None."""
    import torch._dynamo  # noqa: F401 - imports torch.distributed.nn.functional
    import torch.distributed.nn.functional  # noqa: F401


def shutdown() -> None:
    """Leave the process group (every rank, at the end of a run, on every path).

    The C++ group, and gloo's threads, live as long as anything references it: once the
    registry has let go, collect the cycles (a DDP wrapper and its hooks) that may still
    hold it, so that no gloo thread outlives this call."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        gc.collect()


def wait_for_all() -> None:
    """Every rank waits here until all have arrived (a no-op in a single process).

    Called at the end of every training run (ModelTrainer.fit), after rank 0 has written
    the checkpoint and before any rank can leave the process group: a rank that tears
    down its connections while a peer is still busy is the usual source of gloo errors
    at exit."""
    if is_distributed():
        dist.barrier()


def rank_seed(seed: int) -> int:
    """A different seed per rank, so ranks draw different batches and dropout masks."""
    return seed + rank()


def shard(tokens: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous 1/world_size of the tokens (a view, no copy).

    Every rank gets the same length, so every rank has the same number of steps per epoch,
    and an epoch (one pass over each shard) is one pass over the whole text.
    """
    if not is_distributed():
        return tokens
    size = len(tokens) // world_size()
    return tokens[rank() * size:(rank() + 1) * size]


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model to run forward/backward through: DDP around it with several ranks.

    DDP broadcasts rank 0's weights at construction and averages gradients in backward,
    so every rank takes the same optimizer step. The trainer keeps and saves the plain
    model; DDP shares its parameters.
    """
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def _reduce(values: list[float], op: dist.ReduceOp, device: torch.device | None = None
            ) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(device))
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def _collective_device(device: torch.device | None) -> torch.device:
    # nccl only moves CUDA tensors; gloo moves CPU tensors.
    if dist.get_backend() == "nccl":
        return device if device is not None and device.type == "cuda" else torch.device(
            "cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree(stop: bool, budget_spent: bool, elapsed: float) -> tuple[bool, bool, float]:
    """Every rank's decision to stop, made the same on all ranks: one tiny all-reduce.

    Any rank asked to stop (Ctrl-C, SIGTERM) or out of time stops all of them at the same
    step; the slowest rank's clock drives the schedule, so all ranks use the same
    learning rate. Without a process group the values come back as they are.
    """
    if not is_distributed():
        return stop, budget_spent, elapsed
    stop_any, spent_any, latest = _reduce([float(stop), float(budget_spent), elapsed],
                                          dist.ReduceOp.MAX)
    return bool(stop_any), bool(spent_any), latest


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over ranks (a NaN on any rank is a NaN on all: all stop)."""
    if not is_distributed():
        return value
    total = value.detach().double().reshape(1).to(_collective_device(value.device))
    dist.all_reduce(total)
    return total[0] / world_size()


def broadcast(value: Any) -> Any:
    """Rank 0's value of a picklable object, on every rank (e.g. a chosen configuration)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


@torch.no_grad()
def evaluate_loss_shared(evaluate: Callable[..., float], model: torch.nn.Module,
                         tokens: torch.Tensor, window: int, max_chars: int | None,
                         device: torch.device | str) -> float:
    """Validation loss with the work split across ranks, averaged over every character.

    Each rank scores its contiguous part of the (capped) validation tokens; the sums of
    losses and character counts are added over ranks, so the result is the same on every
    rank and equals a per-character mean over the whole capped text.
    """
    if not is_distributed():
        return evaluate(model, tokens, window, max_chars, device)
    if max_chars is not None:
        tokens = tokens[:max_chars + 1]
    part = (len(tokens) - 1) // world_size()
    total, count = 0.0, 0
    if part >= 1:
        mine = tokens[rank() * part:(rank() + 1) * part + 1]
        count = part
        total = evaluate(model, mine, window, None, device) * count
    total, count = _reduce([total, float(count)], dist.ReduceOp.SUM, torch.device(device))
    if count == 0:  # fewer validation characters than ranks: score it all on every rank
        return evaluate(model, tokens, window, None, device)
    return total / count


class _ErrorsOnly(io.TextIOBase):
    """A text stream that passes on only 'error:' lines, marked with the rank."""

    def __init__(self, target: io.TextIOBase, rank_number: int):
        self.target = target
        self.prefix = f"[rank {rank_number}] "
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.startswith(("error:", "Traceback")):
                self.target.write(self.prefix + line + "\n")
                self.target.flush()
        return len(text)


def quiet_other_ranks() -> None:
    """Only rank 0 prints progress; other ranks keep only their 'error:' lines."""
    if is_distributed() and not is_main_process():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        sys.stderr = _ErrorsOnly(sys.stderr, rank())
