"""A perceptual-loss slot: LPIPS (VGG16 variant), built here, weights only from a local file.

Nothing is downloaded and nothing is unpickled. :func:`load_lpips` reads one safetensors
file that holds torchvision's VGG16 ``features`` convolutions and LPIPS v0.1's ``lin``
layers under their original names:

* ``features.{i}.weight`` / ``features.{i}.bias`` for i in 0, 2, 5, 7, 10, 12, 14, 17, 19,
  21, 24, 26, 28 (torchvision ``vgg16().features``);
* ``lin{k}.model.1.weight`` for k = 0..4, shape ``(1, C_k, 1, 1)``, non-negative
  (richzhang/PerceptualSimilarity ``lpips/weights/v0.1/vgg.pth``).

Making that file, once, on a machine that has the two original files (torchvision's
``vgg16-397923af.pth`` and LPIPS's ``vgg.pth``)::

    import torch
    from safetensors.torch import save_file

    vgg = torch.load("vgg16-397923af.pth", map_location="cpu", weights_only=True)
    lin = torch.load("vgg.pth", map_location="cpu", weights_only=True)
    out = {k: v for k, v in vgg.items() if k.startswith("features.")}
    out.update({k: v for k, v in lin.items() if k.startswith("lin")})
    out = {k: v.float().contiguous() for k, v in out.items()}
    assert len(out) == 31, sorted(out)  # 26 VGG tensors + 5 lin weights
    save_file(out, "lpips_vgg.safetensors")

The network (Zhang et al. 2018, "lin" variant): inputs in [-1, 1] go through LPIPS's
scaling layer ``(x - shift) / scale``; VGG16 features are tapped after relu1_2, relu2_2,
relu3_3, relu4_3 and relu5_3; each tap is unit-normalised over channels
(``x / (||x|| + 1e-10)``), the two images' taps are subtracted and squared, weighted by the
1x1 ``lin`` layer (no bias), averaged over space and summed over taps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

VGG_CHANNELS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                       512, 512, 512)
"""torchvision VGG16 ``features`` (config 'D'); 'M' is a 2x2 max-pool."""
TAP_INDICES = (3, 8, 15, 22, 29)
"""Indices in ``features`` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""
TAP_CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for v in VGG_CHANNELS:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            c_in = v
    return nn.Sequential(*layers)


class _Lin(nn.Module):
    """LPIPS ``NetLinLayer`` (dropout slot kept so the key is ``model.1.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.model(x)
        return out


def _unit(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS-VGG distance of ``(N, 3, H, W)`` images in [0, 1] (H, W >= 16) -> ``(N,)``."""

    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg16_features()
        self.lin0 = _Lin(TAP_CHANNELS[0])
        self.lin1 = _Lin(TAP_CHANNELS[1])
        self.lin2 = _Lin(TAP_CHANNELS[2])
        self.lin3 = _Lin(TAP_CHANNELS[3])
        self.lin4 = _Lin(TAP_CHANNELS[4])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def taps(self, x: Tensor) -> list[Tensor]:
        """Scaled input in [-1, 1] -> the five ReLU taps."""
        out: list[Tensor] = []
        h = (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAP_INDICES:
                out.append(h)
            if i == TAP_INDICES[-1]:
                break
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.ndim != 4 or a.shape[1] != 3 or a.shape != b.shape:
            raise ValueError(f"need two (N, 3, H, W) images of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        fa, fb = self.taps(a * 2 - 1), self.taps(b * 2 - 1)
        lins = (self.lin0, self.lin1, self.lin2, self.lin3, self.lin4)
        total = a.new_zeros(a.shape[0])
        for lin, x, y in zip(lins, fa, fb, strict=True):
            total = total + lin((_unit(x) - _unit(y)).pow(2)).mean(dim=(1, 2, 3))
        return total


def load_lpips(path: Path, *, device: str | torch.device = "cpu") -> Callable[[Tensor, Tensor], Tensor]:
    """LPIPS-VGG with weights from a local safetensors file (see the module docstring), frozen, eval mode.

    The returned callable takes two ``(N, 3, H, W)`` batches in [0, 1] and returns ``(N,)``
    distances; gradients flow to the inputs, never to the weights.

    Raises:
        ValueError: the file is missing or not safetensors, or a key is missing, unexpected,
            of the wrong shape, or (``lin``) negative.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"LPIPS weights: no file {path} (convert them as engine/training/losses.py explains)")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ValueError(f"LPIPS weights: {path} is not a safetensors file ({e})") from e
    model = LPIPS()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ValueError(f"LPIPS weights {path}: missing key {missing[0]!r}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise ValueError(f"LPIPS weights {path}: unexpected key {unexpected[0]!r}"
                         + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    for k, shape in expected.items():
        t = tensors[k]
        if tuple(t.shape) != shape:
            raise ValueError(f"LPIPS weights {path}: {k} has shape {tuple(t.shape)}, expected {shape}")
        if not t.is_floating_point():
            raise ValueError(f"LPIPS weights {path}: {k} has dtype {t.dtype}, expected a float type")
        if k.startswith("lin") and bool((t < 0).any()):
            raise ValueError(f"LPIPS weights {path}: {k} has negative entries (LPIPS lin weights are >= 0)")
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device)
