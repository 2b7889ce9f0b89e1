"""What a run keeps of its past: the moving average of the generator's weights (EMA) and the
pool of past fakes shown to the discriminator."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from gancr._torch_compat import foreach_add_, foreach_lerp_, foreach_mul_, foreach_sub

__all__ = ["EMA", "ImagePool"]


class EMA(nn.Module):
    """An exponential moving average of a module's parameters (buffers are copied).

    ``ema = d * ema + (1 - d) * current`` after each update, with ``d`` the ``decay`` or, early
    on, less (:meth:`decay_at`).
    """

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay

    def decay_at(self, updates: int) -> float:
        """The decay of update number ``updates`` (0-based): ``min(decay, (1 + n) / (10 + n))``.

        An average over few updates then follows the weights instead of remembering their
        random start (TensorFlow's ``num_updates``): with ``decay`` 0.999, 0.1 at the first
        update, 0.9 at the 81st, 0.99 at the 891st, and ``decay`` from the 8991st on.
        """
        return min(self.decay, (1.0 + updates) / (10.0 + updates))

    @torch.no_grad()
    def update(self, module: nn.Module, decay: float | None = None, skip: Tensor | None = None) -> None:
        """Move the average towards ``module``; ``skip`` (a 0-dim bool tensor) leaves it as is."""
        d = self.decay if decay is None else decay
        ema_params = list(self.module.parameters())
        params = list(module.parameters())  # no detach needed: no autograd in here
        if skip is None:
            foreach_lerp_(ema_params, params, 1.0 - d)
            for eb, b in zip(self.module.buffers(), module.buffers()):
                eb.copy_(b)
            return
        if ema_params:
            weight = torch.where(skip, 0.0, 1.0 - d).to(ema_params[0].dtype)  # (1 - d), or 0 to skip
            steps = foreach_sub(params, ema_params)
            foreach_mul_(steps, weight)
            foreach_add_(ema_params, steps)
        for eb, b in zip(self.module.buffers(), module.buffers()):
            torch.where(skip, eb, b, out=eb)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


class ImagePool:
    """A pool of past fakes (Shrivastava et al. 2017; CycleGAN), shown to the discriminator.

    For each new fake: while the pool fills, store and return it; afterwards, with
    probability 1/2 return a stored fake (replacing it with the new one), else the new one.
    Draws use torch's random generator, so resuming restores the same choices.
    """

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    def query(self, fakes: Tensor) -> Tensor:
        if self.size == 0:
            return fakes
        out = []
        for image in fakes.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:  # draws on the host: no device sync
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i])  # torch.cat copies it; the slot gets a new tensor
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"images": torch.cat(self.images, 0).cpu() if self.images else torch.zeros(0)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        images = state.get("images")
        self.images = [] if images is None or images.numel() == 0 else [i.unsqueeze(0).to(device) for i in images]

