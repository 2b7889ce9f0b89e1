"""Data-parallel training with ``torchrun``: one process per device, gradients averaged.

``torchrun --nproc-per-node N -m gancr train SPEC --out DIR`` starts N processes; each
reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment, joins the process
group (NCCL on CUDA, gloo on the CPU) and trains on its share of every global batch
(``training.batch_size`` is the global batch; each rank gets ``batch_size / N`` samples).

Gradients are averaged across processes after each backward pass in one bucket per
optimiser, as StyleGAN2-ADA does, rather than through ``DistributedDataParallel``'s
reducer: DDP assumes each parameter belongs to one wrapped module that is called once per
backward, while a gancr step shares the encoder between the generator and the content net
(``share_encoder``), calls the discriminator several times (real, fake, penalties) and
toggles its ``requires_grad`` between the generator and discriminator updates. Averaged
gradients give every process the same update, so the replicas never drift apart; the
parameters are broadcast from rank 0 once at the start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Distributed", "from_environment"]


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> torch.device:
        """Join the process group; returns this process's device (``cuda:LOCAL_RANK`` on CUDA)."""
        if not self.enabled:
            return device
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return device

    def local_batch(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            from gancr.errors import GancrError

            raise GancrError(
                f"training.batch_size {batch_size} is the global batch and must be divisible by the "
                f"number of processes ({self.world_size})"
            )
        return batch_size // self.world_size

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Make every replica start from rank 0's parameters and buffers."""
        if not self.enabled:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def average_gradients(self, params: list[torch.Tensor]) -> None:
        """Average the gradients of ``params`` across processes (one flat bucket)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        from gancr._torch_compat import flatten_dense_tensors, unflatten_dense_tensors

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat.div_(self.world_size)
        for g, synced in zip(grads, unflatten_dense_tensors(flat, grads)):
            g.copy_(synced)

    def average(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over processes (NaN anywhere makes it NaN everywhere)."""
        if not self.enabled:
            return values
        import torch.distributed as dist

        values = values.clone()
        dist.all_reduce(values)
        return values / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def shutdown(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def from_environment() -> Distributed:
    """The ``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    return Distributed(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
