"""A hand-written, plain-PyTorch training step of examples/cyclegan_like.yaml — no gancr.

What a user writes by hand after reading the CycleGAN code (one direction): a ResNet-9
generator (c7s1-64, d128, d256, 9 residual blocks, u128, u64, c7s1-3), a 70x70 PatchGAN,
LSGAN + 10 * L1, Adam(2e-4, betas 0.5/0.999), an image pool of 50 fakes. Layers are the
same as gancr's components (affine instance norm, reflection padding, tanh mapped to
[0, 1]), so both sides do the same arithmetic. ``benchmarks/speed.py`` times it against
gancr's trainer in the same process.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn


def _norm(c: int) -> nn.Module:
    return nn.InstanceNorm2d(c, affine=True)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c),
        )

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, width: int = 64, blocks: int = 9):
        super().__init__()
        w = width
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, w, 7), _norm(w), nn.ReLU(True),
                  nn.Conv2d(w, 2 * w, 3, 2, 1), _norm(2 * w), nn.ReLU(True),
                  nn.Conv2d(2 * w, 4 * w, 3, 2, 1), _norm(4 * w), nn.ReLU(True)]
        layers += [ResBlock(4 * w) for _ in range(blocks)]
        layers += [nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), _norm(2 * w), nn.ReLU(True),
                   nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), _norm(w), nn.ReLU(True),
                   nn.ReflectionPad2d(3), nn.Conv2d(w, 3, 7)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return torch.tanh(self.model(x)) * 0.5 + 0.5


class PatchDiscriminator(nn.Module):
    def __init__(self, width: int = 64, layers: int = 3):
        super().__init__()
        seq = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = width
        for n in range(1, layers + 1):
            out = width * min(2**n, 8)
            seq += [nn.Conv2d(c, out, 4, 2 if n < layers else 1, 1), _norm(out), nn.LeakyReLU(0.2, True)]
            c = out
        seq.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class ImagePool:
    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def query(self, fakes):
        # kept images are copies: a compiled generator's output (CUDA graphs) is overwritten
        # by its next call
        out = []
        for image in fakes.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i])  # torch.cat copies it; the slot gets a new tensor
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)


def make_step(device: torch.device, *, precision: str = "fp32", channels_last: bool = False,
              compile: bool | str = False, optimizer: dict | None = None, lambda_l1: float = 10.0,
              width: int = 64):
    """A ``step(x, s)`` closure that trains G and D once on content ``x`` and style ``s``.

    ``precision`` (fp32 or bf16 autocast), ``channels_last``, ``compile`` and optimiser
    options (e.g. ``{"fused": True}``) are what a careful user would add by hand; the
    defaults are the plain step. ``width`` is the first layer's of G and D (CycleGAN's 64;
    the generator's encoder widths are ``[width, 2 * width, 4 * width]``): the same layers
    and operators at any width, so tests count operators at a small one.
    """
    G = ResnetGenerator(width).to(device)
    D = PatchDiscriminator(width).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), **(optimizer or {}))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), **(optimizer or {}))
    g_fwd, d_fwd = G, D
    if compile:
        mode = None if compile is True else compile
        g_fwd, d_fwd = torch.compile(G, mode=mode), torch.compile(D, mode=mode)
    pool = ImagePool(50)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(x, s):
        if channels_last:
            x, s = x.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last)
        # generator
        for p in D.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with autocast:
            fake = g_fwd(x)
            loss_g = (d_fwd(fake).float() - 1).square().mean() + lambda_l1 * F.l1_loss(fake.float(), x)
        loss_g.backward()
        opt_g.step()
        # discriminator
        for p in D.parameters():
            p.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        f = pool.query(fake.detach())
        with autocast:
            loss_d = 0.5 * ((d_fwd(s).float() - 1).square().mean() + d_fwd(f).float().square().mean())
        loss_d.backward()
        opt_d.step()
        return loss_g.detach(), loss_d.detach()

    step.modules = (G, D)  # type: ignore[attr-defined]
    return step
