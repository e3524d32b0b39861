"""GLF-CR: global-local fusion for SAR-guided cloud removal (Xu et al., "GLF-CR: SAR-enhanced
cloud removal with global-local fusion", ISPRS J. Photogramm. Remote Sens. 2022).

An optical and a SAR stream run side by side at half resolution (both pixel-unshuffled by
2). Each stream has two stem convolutions (5x5, then 3x3) and ``blocks[0]`` residual dense
blocks of ``blocks[1]`` layers with growth ``widths[1]``; a dense layer is a 3x3
convolution and ReLU followed by a Swin-style window transformer (``heads`` heads,
``window`` pixels, every other layer shifted by half a window) on the layer's growth
channels. In every layer the SAR stream's attention logits correct the optical ones
through a gate (global fusion). After every block, a dynamic filter predicted from both
streams filters the SAR features with a 5x5 kernel per pixel and channel, and two gates
exchange the difference between the streams (local fusion). The optical outputs of all
blocks are fused, added to the first stem's features, and pixel-shuffled back to full
resolution; the result is a correction added to the cloudy input.

Choices the paper's description leaves open, made here so that the full configuration has
the published parameter count (14,827,373 with 13 optical and 2 SAR bands, matched
exactly):
- each dense block ends with a 3x3 convolution from ``widths[0] + blocks[1] * widths[1]``
  channels back to ``widths[0]`` (with a 1x1 one the count cannot be reached);
- one relative position bias table per layer, shared by both streams' attention;
- one LayerNorm per stream and layer, before the MLP (ratio 2, GELU); the attention reads
  the convolution's ReLU output directly;
- the gate between the attention logits is a 1x1 convolution over the heads;
- the dynamic-filter generator is a 3x3 convolution from both streams to ``widths[0]``,
  two residual blocks of two 3x3 convolutions and a 1x1 convolution to 25 kernels per
  channel, with LeakyReLU(0.1); the exchange gates are 1x1 convolutions;
- the upsampler's width follows the feature width: 2/3 of it after the shuffle (64 of 96).

Not the paper's (parameters unchanged): no stochastic depth; windows stay shifted and masked
where the map is one window (one behaviour at every tile size); the filter pads with zeros.

Written for export: the window partition and the pixel (un)shuffles use reshapes of at
most five dimensions; the cyclic shift is ``torch.roll``, which the ONNX exporter writes as
slices and a concatenation (and traces faster than slices written out here); the shifted
windows' mask is computed from the feature map's size inside the graph, so height and width
stay dynamic (any multiple of ``config.multiple``); the per-pixel filter is 25 shifted
slices multiplied and added.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError
from ..base import Network
from ..registry import ModelConfig

KERNEL = 5  # the dynamic filter's size
LEAK = 0.1  # LeakyReLU slope in the dynamic-filter generator
MLP_RATIO = 2
MASKED = -100.0  # added to the logits of token pairs that the cyclic shift brought together


def _unshuffle(x: torch.Tensor) -> torch.Tensor:
    """``F.pixel_unshuffle(x, 2)``, whose decomposition is a 6-D reshape."""
    b, c, h, w = x.shape
    x = x.reshape(-1, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3)
    return x.reshape(b, c * 4, h // 2, w // 2)


def _shuffle(x: torch.Tensor) -> torch.Tensor:
    """``F.pixel_shuffle(x, 2)`` in at most five dimensions."""
    b, c, h, w = x.shape
    x = x.reshape(-1, 2, 2, h, w).permute(0, 3, 1, 4, 2)
    return x.reshape(b, c // 4, h * 2, w * 2)


def _windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H, W) -> (windows * B, window * window, C), the window index outermost so that
    the shift mask, one per window, is repeated over the batch in four dimensions."""
    b, c, h, w = x.shape
    x = x.reshape(-1, window, w // window, window).transpose(1, 2)
    x = x.reshape(b, c, -1, window * window).permute(2, 0, 3, 1)
    return x.reshape(-1, window * window, c)


def _merge(x: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """The inverse of ``_windows``."""
    c = x.shape[-1]
    x = x.reshape(-1, b, window * window, c).permute(1, 3, 0, 2)
    x = x.reshape(-1, w // window, window, window).transpose(1, 2)
    return x.reshape(b, c, h, w)


def shift_mask(h: int, w: int, window: int, shift: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """(windows, 1, N, N) additive mask of the shifted windows of an h x w map: 0 between
    tokens of the same region of the rolled map, ``MASKED`` between tokens that only the
    roll made neighbours. Built with tensor operations on the size, so that an exported
    graph computes it for whatever size it is given. ``like``: its device and dtype, and
    its batch: the mask is then repeated per batch item, (windows * B, 1, N, N) in the
    window-major order of ``_windows``."""

    def regions(n: int) -> torch.Tensor:
        i = torch.arange(n, device=None if like is None else like.device)
        return (i >= n - window).to(torch.float32) + (i >= n - shift).to(torch.float32)

    label = regions(h)[:, None] * 3 + regions(w)[None, :]
    label = _windows(label[None, None], window)[:, :, 0]
    same = label[:, :, None] == label[:, None, :]
    mask = torch.where(same, 0.0, MASKED)
    if like is None:
        return mask[:, None]
    n = mask.shape[-1]
    return mask[:, None].expand(-1, like.shape[0], n, n).reshape(-1, 1, n, n).to(like.dtype)


class PairedWindowAttention(nn.Module):
    """Window self-attention of both streams; the SAR logits correct the optical ones."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv_optical = nn.Linear(dim, 3 * dim)
        self.qkv_sar = nn.Linear(dim, 3 * dim)
        self.proj_optical = nn.Linear(dim, dim)
        self.proj_sar = nn.Linear(dim, dim)
        # SAR sees through clouds, so where its attention pattern disagrees with the
        # optical one, a learned gate per head decides how far to trust it.
        self.gate = nn.Conv2d(heads, heads, 1)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]) + (window - 1)
        self.register_buffer("bias_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def _logits(self, x: torch.Tensor, qkv: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        _, t, c = x.shape
        q, k, v = qkv(x).reshape(-1, t, 3 * self.heads, c // self.heads).transpose(1, 2).chunk(3, dim=1)
        return (q * self.scale) @ k.transpose(-2, -1), v

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        t, c = optical.shape[1:]
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)
        a_opt, v_opt = self._logits(optical, self.qkv_optical)
        a_sar, v_sar = self._logits(sar, self.qkv_sar)
        a_opt, a_sar = a_opt + bias, a_sar + bias
        if mask is not None:
            a_opt, a_sar = a_opt + mask, a_sar + mask
        diff = a_sar - a_opt
        a_opt = a_opt + torch.sigmoid(self.gate(diff)) * diff
        out_opt = (a_opt.softmax(-1) @ v_opt).transpose(1, 2).reshape(-1, t, c)
        out_sar = (a_sar.softmax(-1) @ v_sar).transpose(1, 2).reshape(-1, t, c)
        return self.proj_optical(out_opt), self.proj_sar(out_sar)


class Mlp(nn.Sequential):
    def __init__(self, dim: int):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim))


class DenseLayer(nn.Module):
    """Both streams' dense layer: conv + ReLU to ``growth`` channels, then a window
    transformer on them; returns the growth channels to concatenate."""

    def __init__(self, cin: int, growth: int, heads: int, window: int, shift: int):
        super().__init__()
        self.window, self.shift, self.growth = window, shift, growth
        self.conv_optical = nn.Conv2d(cin, growth, 3, padding=1)
        self.conv_sar = nn.Conv2d(cin, growth, 3, padding=1)
        self.attn = PairedWindowAttention(growth, heads, window)
        self.mlp_optical = Mlp(growth)
        self.mlp_sar = Mlp(growth)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = optical.shape
        g = self.growth
        # Both streams side by side in the channels: one shift, one partition and one
        # merge instead of two of each, a smaller graph to export.
        x = torch.cat([F.relu(self.conv_optical(optical)), F.relu(self.conv_sar(sar))], dim=1)
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), (2, 3))
        # Attention, MLP and their residuals act per token, so all of it runs on the
        # (shifted) windows and the map is reassembled once.
        x = _windows(x, self.window)
        o, s = x[..., :g], x[..., g:]
        ao, as_ = self.attn(o, s, mask if self.shift else None)
        o, s = o + ao, s + as_
        x = torch.cat([o + self.mlp_optical(o), s + self.mlp_sar(s)], dim=-1)
        x = _merge(x, self.window, b, h, w)
        if self.shift:
            x = torch.roll(x, (self.shift, self.shift), (2, 3))
        return x[:, :g], x[:, g:]


class DenseBlock(nn.Module):
    def __init__(self, width: int, growth: int, layers: int, heads: int, window: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [DenseLayer(width + i * growth, growth, heads, window, shift=window // 2 if i % 2 else 0) for i in range(layers)]
        )
        self.fuse_optical = nn.Conv2d(width + layers * growth, width, 3, padding=1)
        self.fuse_sar = nn.Conv2d(width + layers * growth, width, 3, padding=1)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        o, s = optical, sar
        for layer in self.layers:
            go, gs = layer(o, s, mask)
            o, s = torch.cat([o, go], dim=1), torch.cat([s, gs], dim=1)
        return optical + self.fuse_optical(o), sar + self.fuse_sar(s)


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(LEAK), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LocalFusion(nn.Module):
    """SAR features filtered by a kernel predicted per pixel and channel from both streams,
    then gated exchange between the streams."""

    def __init__(self, width: int):
        super().__init__()
        self.kernels = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.LeakyReLU(LEAK),
            ResidualBlock(width),
            ResidualBlock(width),
            nn.Conv2d(width, KERNEL * KERNEL * width, 1),
            nn.LeakyReLU(LEAK),
        )
        self.to_optical = nn.Conv2d(width, width, 1)
        self.to_sar = nn.Conv2d(width, width, 1)

    def filter(self, sar: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """``kernels`` is tap-major (tap t of every channel in channels t*C..(t+1)*C), so a
        tap is a 4-D channel slice rather than a 6-D unfold; ONNX, TensorRT and OpenVINO
        then need nothing beyond Slice, Mul and Add."""
        c = sar.shape[1]
        r = KERNEL // 2
        padded = F.pad(sar, (r, r, r, r))
        taps = torch.split(kernels, c, dim=1)
        # Slice bounds counted from both ends are constants, whatever the map's size.
        span = [slice(d, d - 2 * r or None) for d in range(KERNEL)]
        out = None
        for dy in range(KERNEL):
            rows = padded[:, :, span[dy]]
            for dx in range(KERNEL):
                term = taps[dy * KERNEL + dx] * rows[:, :, :, span[dx]]
                out = term if out is None else out + term
        return out

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filtered = self.filter(sar, self.kernels(torch.cat([optical, sar], dim=1)))
        d = filtered - optical
        optical = optical + torch.sigmoid(self.to_optical(d)) * d
        # The filtered SAR is what the optical stream just took in, so what goes back is
        # measured against it.
        d = optical - filtered
        return optical, sar + torch.sigmoid(self.to_sar(d)) * d


class GLFCR(Network):
    """Inputs NCHW float32 in [0, 1]; H and W multiples of ``config.multiple`` (twice the
    window). Returns ``reconstruction`` (N x optical bands, in [0, 1])."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if len(config.widths) != 2 or len(config.blocks) != 2 or config.heads < 1 or config.window < 2:
            raise ConfigError(f"GLF-CR config {config.name}: widths and blocks take two numbers each, heads and window one")
        width, growth = config.widths
        n_blocks, layers = config.blocks
        if growth % config.heads:
            raise ConfigError(f"GLF-CR config {config.name}: the growth {growth} must be a multiple of the heads {config.heads}")
        self.window = config.window
        self.stem_optical = nn.Conv2d(4 * config.optical_bands, width, 5, padding=2)
        self.stem2_optical = nn.Conv2d(width, width, 3, padding=1)
        self.stem_sar = nn.Conv2d(4 * config.sar_bands, width, 5, padding=2)
        self.stem2_sar = nn.Conv2d(width, width, 3, padding=1)
        self.blocks = nn.ModuleList([DenseBlock(width, growth, layers, config.heads, config.window) for _ in range(n_blocks)])
        self.fusions = nn.ModuleList([LocalFusion(width) for _ in range(n_blocks)])
        self.global_fusion = nn.Sequential(nn.Conv2d(n_blocks * width, width, 1), nn.Conv2d(width, width, 3, padding=1))
        up = 2 * width // 3
        self.upsample = nn.Conv2d(width, 4 * up, 3, padding=1)
        self.tail = nn.Conv2d(up, config.optical_bands, 3, padding=1)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> dict[str, torch.Tensor]:
        first = self.stem_optical(_unshuffle(optical))
        o = self.stem2_optical(first)
        s = self.stem2_sar(self.stem_sar(_unshuffle(sar)))
        h, w = o.shape[-2:]
        # One mask for every shifted layer; a graph traced at any size computes it from its
        # own input's size.
        shifted = self.config.blocks[1] > 1
        mask = shift_mask(h, w, self.window, self.window // 2, o) if shifted else None
        outs = []
        for block, fusion in zip(self.blocks, self.fusions):
            o, s = fusion(*block(o, s, mask))
            outs.append(o)
        x = self.global_fusion(torch.cat(outs, dim=1)) + first
        correction = self.tail(_shuffle(self.upsample(x)))
        return {"reconstruction": torch.clamp(optical + correction, 0.0, 1.0)}
