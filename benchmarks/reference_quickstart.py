"""A hand-written, plain-PyTorch joint-stage training step of examples/quickstart.yaml — no gancr.

The same networks and losses written by hand: a conv encoder (16, 32) and a U-Net decoder
as the generator, no neck (a small receptive field), whose output is added to its input
(residual, starting at zero); a content net (conv encoder (16, 32, 64), upsample-conv
decoder) trained on reconstruction; a 2-layer spectrally normalised PatchGAN on the
luminance, with a binomial blur before its stride-2 convolutions; content L1 + 3 x Lab chroma
L1 + 0.25 x SSIM dissimilarity, style 0.5 x LSGAN; joint weights w_c = W_C, w_g = 1; Adam at
3e-4 (G), 1e-3 (C), 4e-4 (D);
an EMA of the generator (decay 0.98, warmed up as min(0.98, (1 + n) / (10 + n))).
``benchmarks/speed.py`` times it against gancr's trainer in the same process.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

#: The joint stage's content weight (examples/quickstart.yaml's ``w_c``).
W_C = 0.25


def _block(cin, cout, k, stride=1):
    pad = [nn.ReflectionPad2d(k // 2)] if stride == 1 else []
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=0 if stride == 1 else k // 2)
    return nn.Sequential(*pad, conv, nn.InstanceNorm2d(cout, affine=True), nn.ReLU(True))


class Encoder(nn.Module):
    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        stages = [_block(3, widths[0], 7)] + [_block(a, b, 3, 2) for a, b in zip(widths, widths[1:])]
        self.levels = nn.ModuleList(stages)

    def forward(self, x):
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats


def _head(c):
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7))


class Generator(nn.Module):
    """conv encoder (16, 32) -> U-Net decoder (a skip at reduction 1), no neck."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder((16, 32))
        self.up1 = _block(32 + 16, 16, 3)
        self.head = _head(16)

    def forward(self, x):
        f1, f2 = self.encoder(x)
        h = self.up1(torch.cat([F.interpolate(f2, scale_factor=2.0, mode="nearest"), f1], 1))
        d = torch.tanh(self.head(h)) * 0.5 + 0.5
        return (x + 2.0 * d - 1.0).clamp(0.0, 1.0)  # residual: d = 0.5 is no change


class ContentNet(nn.Module):
    """conv encoder -> upsample-conv decoder (no skips): reconstructs its input."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.up1 = _block(64, 32, 3)
        self.up2 = _block(32, 16, 3)
        self.head = _head(16)

    def forward(self, x):
        h = self.encoder(x)[-1]
        h = self.up2(F.interpolate(self.up1(F.interpolate(h, scale_factor=2.0)), scale_factor=2.0))
        return torch.tanh(self.head(h)) * 0.5 + 0.5


class BlurConv(nn.Conv2d):
    """A 4x4 stride-2 convolution that first blurs its input with the binomial [1, 2, 1] filter."""

    def forward(self, x):
        from kornia.filters import filter2d

        kernel = x.new_tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])[None] / 16.0
        return super().forward(filter2d(x, kernel, border_type="reflect"))


class PatchGAN(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.model = nn.Sequential(
            sn(BlurConv(1, width, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            sn(BlurConv(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(2 * width, 4 * width, 4, 1, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(4 * width, 1, 4, 1, 1)),
        )

    def forward(self, x):
        from kornia.color import rgb_to_grayscale

        return self.model(rgb_to_grayscale(x))


def chroma(img):
    from kornia.color import rgb_to_lab

    return rgb_to_lab(img.float().clamp(0, 1))[:, 1:] / 128.0


def dssim(y, x):
    """Structural dissimilarity: (1 - SSIM) / 2 under kornia's 11-tap Gaussian window, clamped, averaged."""
    from kornia.metrics import ssim

    return torch.clamp((1.0 - ssim(y, x, 11, max_val=1.0, eps=1e-12)) / 2, min=0, max=1).mean()


def content_loss(x, y):
    return F.l1_loss(y, x) + 3.0 * F.l1_loss(chroma(y), chroma(x)) + 0.25 * dssim(y, x)


def make_step(device: torch.device, *, precision: str = "fp32", channels_last: bool = False,
              compile: bool | str = False, optimizer: dict | None = None):
    """A ``step(x, s)`` closure: one joint-stage step of G and C, then one D step, then EMA."""
    G, C, D = Generator().to(device), ContentNet().to(device), PatchGAN().to(device)
    with torch.no_grad():  # the generator starts as the identity
        G.head[1].weight.zero_()
        G.head[1].bias.zero_()
    if channels_last:
        G, C, D = (m.to(memory_format=torch.channels_last) for m in (G, C, D))
    ema = copy.deepcopy(G).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opts = optimizer or {}
    opt_g = torch.optim.Adam(G.parameters(), lr=3e-4, betas=(0.5, 0.999), **opts)
    opt_c = torch.optim.Adam(C.parameters(), lr=1e-3, betas=(0.5, 0.999), **opts)
    opt_d = torch.optim.Adam(D.parameters(), lr=4e-4, betas=(0.5, 0.999), **opts)
    g_fwd, c_fwd, d_fwd = G, C, D
    if compile:
        mode = None if compile is True else compile
        g_fwd, c_fwd, d_fwd = (torch.compile(m, mode=mode) for m in (G, C, D))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    updates = [0]  # EMA updates so far: the average's decay warms up as TensorFlow's num_updates

    def step(x, s):
        if channels_last:
            x, s = x.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last)
        for p in D.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        opt_c.zero_grad(set_to_none=True)
        with autocast:
            fake = g_fwd(x)
            style = 0.5 * (d_fwd(fake).float() - 1).square().mean()
            recon = c_fwd(x)
            loss = W_C * content_loss(x, fake) + style + content_loss(x, recon)
        loss.backward()
        opt_g.step()
        opt_c.step()
        with torch.no_grad():
            decay = min(0.98, (1 + updates[0]) / (10 + updates[0]))
            torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in G.parameters()], 1 - decay)
            updates[0] += 1
        for p in D.parameters():
            p.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with autocast:
            loss_d = 0.5 * ((d_fwd(s).float() - 1).square().mean() + d_fwd(fake.detach()).float().square().mean())
        loss_d.backward()
        opt_d.step()
        return loss.detach(), loss_d.detach()

    step.modules = (G, C, D)  # type: ignore[attr-defined]
    return step
