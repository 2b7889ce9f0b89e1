"""A hand-written, plain-PyTorch joint-stage training step of examples/quickstart.yaml — no gancr.

The same networks and losses written by hand: a conv encoder (16, 32) and a U-Net decoder
as the generator, no neck (a small receptive field), whose output is added to its input
(residual, starting at zero); a content net (conv encoder (16, 32, 64), upsample-conv
decoder) trained on reconstruction; a discriminator of spectrally normalised heads (with a
binomial blur before their stride-2 convolution) on relu1_1 and relu2_2 of a frozen VGG16 that
sees the image reflected by MARGIN pixels; content L1 + COLOR_WEIGHT x Lab chroma L1 +
SSIM_WEIGHT x SSIM dissimilarity, style LSGAN_WEIGHT x LSGAN; joint weights w_c = W_C, w_g = 1;
Adam at 3e-4 (G), 1e-3 (C), 4e-4 (the discriminator's heads);
an EMA of the generator (decay 0.98, warmed up as min(0.98, (1 + n) / (10 + n))).
``benchmarks/speed.py`` times it against gancr's trainer in the same process.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

#: The joint stage's content weight (examples/quickstart.yaml's ``w_c``).
W_C = 0.125
#: The chroma and SSIM terms' weights among the content losses, and the LSGAN term's.
COLOR_WEIGHT = 6.0
SSIM_WEIGHT = 0.3
LSGAN_WEIGHT = 0.5
#: The discriminator's margin (pixels reflected on each side before its VGG16).
MARGIN = 8


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


class VGG16ToRelu2_2(nn.Module):
    """VGG16's first four convolutions (torchvision's layout), frozen; returns relu1_1 and relu2_2
    of the image in Caffe's preprocessing (BGR, 0-255, minus the mean: HED's weights')."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(True), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(True),
            nn.MaxPool2d(2, 2), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1),
            nn.ReLU(True),
        )
        self.register_buffer("mean", torch.tensor([104.00699, 116.66877, 122.67892]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.ones(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x):
        h = (x.flip(1) * 255.0 - self.mean) / self.std
        out = []
        for i, module in enumerate(self.features):
            h = module(h)
            if i in (1, 8):
                out.append(h)
        return out


class Projected(nn.Module):
    """Spectrally normalised heads (a 1x1 projection, one blurred stride-2 conv, a 4x4 conv to a
    logit) on relu1_1 and relu2_2 of the frozen VGG16, which sees the image reflected by MARGIN
    pixels on each side; the heads see the features without the margin."""

    def __init__(self, width=32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.encoder = VGG16ToRelu2_2().eval()
        self.heads = nn.ModuleList(
            nn.Sequential(sn(nn.Conv2d(c, width, 1)), nn.LeakyReLU(0.2, True),
                          sn(BlurConv(width, width, 4, 2, 1)), nn.LeakyReLU(0.2, True),
                          sn(nn.Conv2d(width, 1, 4, 1, 1)))
            for c in (64, 128)
        )

    def forward(self, x):
        features = self.encoder(F.pad(x, (MARGIN,) * 4, mode="reflect"))
        return [head(f[..., t : f.shape[-2] - t, t : f.shape[-1] - t])
                for head, f, t in zip(self.heads, features, (MARGIN, MARGIN // 2))]

    def set_trainable(self, flag):
        self.heads.requires_grad_(flag)


def chroma(img):
    from kornia.color import rgb_to_lab

    return rgb_to_lab(img.float().clamp(0, 1))[:, 1:] / 128.0


def dssim(y, x):
    """Structural dissimilarity: (1 - SSIM) / 2 under kornia's 11-tap Gaussian window, clamped, averaged."""
    from kornia.metrics import ssim

    return torch.clamp((1.0 - ssim(y, x, 11, max_val=1.0, eps=1e-12)) / 2, min=0, max=1).mean()


def content_loss(x, y):
    return F.l1_loss(y, x) + COLOR_WEIGHT * F.l1_loss(chroma(y), chroma(x)) + SSIM_WEIGHT * dssim(y, x)


def mean(values):
    return sum(values) / len(values)


def make_step(device: torch.device, *, precision: str = "fp32", channels_last: bool = False,
              compile: bool | str = False, optimizer: dict | None = None):
    """A ``step(x, s)`` closure: one joint-stage step of G and C, then one D step, then EMA."""
    G, C, D = Generator().to(device), ContentNet().to(device), Projected().to(device)
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
    opt_d = torch.optim.Adam(D.heads.parameters(), lr=4e-4, betas=(0.5, 0.999), **opts)
    g_fwd, c_fwd, d_fwd = G, C, D
    if compile:
        mode = None if compile is True else compile
        g_fwd, c_fwd, d_fwd = (torch.compile(m, mode=mode) for m in (G, C, D))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    updates = [0]  # EMA updates so far: the average's decay warms up as TensorFlow's num_updates

    def step(x, s):
        if channels_last:
            x, s = x.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last)
        D.set_trainable(False)
        opt_g.zero_grad(set_to_none=True)
        opt_c.zero_grad(set_to_none=True)
        with autocast:
            fake = g_fwd(x)
            style = LSGAN_WEIGHT * mean([(f.float() - 1).square().mean() for f in d_fwd(fake)])
            recon = c_fwd(x)
            loss = W_C * content_loss(x, fake) + style + content_loss(x, recon)
        loss.backward()
        opt_g.step()
        opt_c.step()
        with torch.no_grad():
            decay = min(0.98, (1 + updates[0]) / (10 + updates[0]))
            torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in G.parameters()], 1 - decay)
            updates[0] += 1
        D.set_trainable(True)
        opt_d.zero_grad(set_to_none=True)
        with autocast:
            loss_d = LSGAN_WEIGHT * mean([0.5 * ((r.float() - 1).square().mean() + f.float().square().mean())
                                          for r, f in zip(d_fwd(s), d_fwd(fake.detach()))])
        loss_d.backward()
        opt_d.step()
        return loss.detach(), loss_d.detach()

    step.modules = (G, C, D)  # type: ignore[attr-defined]
    return step
