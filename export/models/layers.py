"""Building blocks shared by the model zoo: Conv+BN(+ReLU) units that fold into one convolution.

Folding a BatchNorm into the preceding convolution (``w' = w * g / sqrt(v + eps)``,
``b' = (b - m) * g / sqrt(v + eps) + beta``) is the inference-time "operator fusion" the ATHQA challenge entry
describes and that RepVGG / timm's ``reparameterize`` popularised: the exported graph has no
BatchNormalization node and one fewer memory pass per layer.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def fold_batchnorm(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """Rewrite ``conv`` in place (adding a bias) so that it computes ``bn(conv(x))`` in eval mode; returns it.

    The arithmetic runs in float64 so the folded weights differ from the exact ones by one float32 rounding.
    """
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"fold_batchnorm expects a convolution, got {type(conv).__name__}")
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f"fold_batchnorm expects a BatchNorm, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm that tracks no running statistics")
    dtype = conv.weight.dtype
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(bias)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(bias)
    scale = gamma / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    # In place: a fresh module would pay for a random initialisation we discard, a copy for a weight clone.
    with torch.no_grad():
        conv.weight.copy_((weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))).to(dtype))
    conv.bias = nn.Parameter(((bias - bn.running_mean.detach().double()) * scale + beta).to(dtype),
                             requires_grad=conv.weight.requires_grad)
    return conv


def fold_pairs(owner: nn.Module, pairs: Iterable[tuple[str, str]]) -> None:
    """Fold ``owner.<bn>`` into ``owner.<conv>`` for each (conv, bn) attribute pair; the BN becomes Identity.

    Attributes may be dotted paths or integer indices of a Sequential (``("0", "1")``).
    """
    for conv_name, bn_name in pairs:
        conv = owner.get_submodule(conv_name)
        bn = owner.get_submodule(bn_name)
        if isinstance(bn, nn.Identity):
            continue  # already folded
        fold_batchnorm(conv, bn)
        _set_submodule(owner, bn_name, nn.Identity())


def _set_submodule(owner: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = owner.get_submodule(parent_path) if parent_path else owner
    setattr(parent, name, module)


def fuse_model(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm of ``model`` into its convolution, in place; returns ``model``.

    Every module class of the zoo that pairs a conv with a BN implements ``fuse_batchnorm()``; a BN left over
    afterwards means a class forgot to, which is a bug (RuntimeError), not a user error.
    """
    for module in list(model.modules()):
        fuse = getattr(module, "fuse_batchnorm", None)
        if fuse is not None and module is not model:
            fuse()
    own = getattr(type(model), "fuse_batchnorm", None)
    if own is not None and own is not fuse_model:
        model.fuse_batchnorm()
    left = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise RuntimeError(f"BatchNorm layers left after fusion: {left[:5]}{' ...' if len(left) > 5 else ''}")
    model.is_fused = True
    return model


class ConvBNAct(nn.Module):
    """Convolution without bias, BatchNorm, optional ReLU; ``fuse_batchnorm()`` turns it into conv(+ReLU).

    ``dims`` is 2 (frames) or 3 (video volumes); ``kernel_size`` an int or a tuple; padding keeps the size for
    odd kernels at stride 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=1, stride=1, groups: int = 1,
                 act: bool = True, dims: int = 2):
        super().__init__()
        conv_cls, bn_cls = {2: (nn.Conv2d, nn.BatchNorm2d), 3: (nn.Conv3d, nn.BatchNorm3d)}[dims]
        ks = (kernel_size,) * dims if isinstance(kernel_size, int) else tuple(kernel_size)
        padding = tuple(k // 2 for k in ks)
        self.conv = conv_cls(in_channels, out_channels, ks, stride=stride, padding=padding, groups=groups,
                             bias=False)
        self.bn = bn_cls(out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse_batchnorm(self) -> None:
        fold_pairs(self, [("conv", "bn")])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mean_std_pool(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean and unbiased (N-1) standard deviation over the spatial axes of ``[N, C, H, W]``.

    Computed in float32 whatever the input precision: the sum of squares overflows FP16 (sampling.md section
    2), and the two-pass form (centre, then square) avoids cancellation. The result keeps the input dtype.
    """
    x = features.float().flatten(2)
    mean = x.mean(dim=2)
    centred = x - mean.unsqueeze(2)
    count = x.shape[2]
    var = (centred * centred).sum(dim=2) / max(count - 1, 1)
    return mean.to(features.dtype), torch.sqrt(var).to(features.dtype)
