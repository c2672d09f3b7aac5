"""CycleGAN ResNet generator, used for ``G_AB`` (clear -> hazy) and ``G_BA`` (hazy -> clear).

Works in ``[-1, 1]`` (tanh output); the ``[0, 1] <-> [-1, 1]`` conversion lives in
:mod:`eid.physics.learned` only. Up-sampling is nearest-neighbour resize + 3x3 convolution rather than a
transposed convolution, which avoids checkerboard artefacts (pytorch-CycleGAN-and-pix2pix#190); it is
computed exactly at the low resolution by :class:`NearestUpsampleConv2d` (2.25x fewer multiplications).
At the ``paper`` size (64 base channels, 9 blocks, 2 down-samplings) a 3 -> 3 generator has 11,378,179
parameters, as the authors' network. With ``winograd=True`` its stride-1 3x3 convolutions are
:class:`WinogradConv2d` layers, which compute the wide ones (the residual blocks) by Winograd's algorithm on
CPU (:mod:`eid.models.winograd`); both stages use this, as it measured faster at batch sizes 1, 2 and 4.

``residual=True`` (the ``fast`` operator preset) outputs ``clip(x + 2 tanh(h(x)), -1, 1)`` instead of
``tanh(h(x))``, with the same parameters. Why: the first layer is ``Conv7 -> InstanceNorm``, and
``conv(a x + b) = a conv(x) + c`` per channel, which instance norm removes, so the plain generator is
blind to positive affine changes of its input (``G(a x + b) ~ G(x)``). Used as the haze operator ``H``,
``||H(f(y)) - y||`` then cannot constrain the brightness or contrast of ``f(y)``. The identity skip keeps
the input's intensities, and "input plus a bounded correction" is the right bias for haze (an attenuation
plus an additive veil / airlight). ``2 tanh`` spans ``[-2, 2]``, so any output in ``[-1, 1]`` is reachable
from any input; the clamp passes gradients straight through.
"""

from __future__ import annotations

import torch
from torch import nn

from eid.errors import EIDError
from eid.models.upsample import NearestUpsampleConv2d
from eid.models.winograd import WinogradConv2d


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """CycleGAN initialisation: conv weights ~ N(0, std), biases 0 (InstanceNorm has no affine weights)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _conv_norm_relu(
    conv: type[nn.Conv2d], cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0
) -> list[nn.Module]:
    return [
        conv(cin, cout, kernel, stride, padding),
        nn.InstanceNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def clamp_gan_range(x: torch.Tensor) -> torch.Tensor:
    """``clip(x, -1, 1)`` in the forward pass, identity in the backward pass (straight-through)."""
    return x + (x.clamp(-1.0, 1.0) - x).detach()


class ResidualBlock(nn.Module):
    r"""``x + IN(conv(pad(ReLU(IN(conv(pad(x)))))))`` with reflection padding and 3x3 convolutions."""

    def __init__(self, channels: int, conv: type[nn.Conv2d] = nn.Conv2d) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            *_conv_norm_relu(conv, channels, channels, 3),
            nn.ReflectionPad2d(1),
            conv(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    r"""ResNet image-to-image generator: ``[-1,1]^{C_in x H x W} -> [-1,1]^{C_out x H x W}``.

    ``ReflPad3-Conv7(C_in->w)-IN-ReLU``, ``n_down`` x ``Conv3/2 (x2 channels)-IN-ReLU``, ``blocks``
    residual blocks, ``n_down`` x ``Upsample2(nearest)-Conv3 (/2 channels)-IN-ReLU`` (resize and conv in
    one layer), ``ReflPad3-Conv7(w->C_out)`` ``= h(x)``, then ``tanh(h(x))`` or, if ``residual``,
    ``clip(x + 2 tanh(h(x)), -1, 1)`` (straight-through clamp; needs ``C_in = C_out``). H and W must be
    multiples of :attr:`multiple` (``2**n_down``); callers pad.

    :param int in_channels: input channels (1 or 3).
    :param int out_channels: output channels.
    :param int width: channels of the first layer (64 in the paper).
    :param int blocks: residual blocks (9 in the paper).
    :param int n_down: stride-2 down-samplings (2 in the paper).
    :param bool residual: identity skip around the network (not in the paper; same parameter count).
    :param bool winograd: :class:`WinogradConv2d` instead of ``nn.Conv2d`` (same parameters and results).

    >>> ResnetGenerator(3, 3, width=8, blocks=1)(torch.zeros(1, 3, 16, 16)).shape
    torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 64,
        blocks: int = 9,
        n_down: int = 2,
        residual: bool = False,
        winograd: bool = False,
    ) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise EIDError(
                f"a residual generator needs as many input as output channels, got {in_channels} -> "
                f"{out_channels}; set residual: false"
            )
        conv = WinogradConv2d if winograd else nn.Conv2d
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            *_conv_norm_relu(conv, in_channels, width, 7),
        ]
        ch = width
        for _ in range(n_down):
            layers += _conv_norm_relu(conv, ch, ch * 2, 3, stride=2, padding=1)
            ch *= 2
        layers += [ResidualBlock(ch, conv) for _ in range(blocks)]
        for _ in range(n_down):
            layers += [
                NearestUpsampleConv2d(ch, ch // 2),
                nn.InstanceNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.multiple = 2**n_down
        self.residual = residual
        self.blocks, self.n_down = blocks, n_down
        init_normal(self)

    @property
    def local_radius(self) -> int:
        """``R``: with its instance-norm statistics fixed, each output pixel depends only on inputs within ``R``
        pixels (reflection and zero padding act at the image's own borders only), so tiles that discard ``R``
        pixels next to internal edges reproduce the whole image (:mod:`eid.inference.pinv_tiles`).

        At scale ``k`` (resolution ``2^-k``) a 3x3 convolution adds ``2^k``; a stride-2 convolution from scale
        ``k`` adds ``2 \\cdot 2^k`` (its taps and the stride's rounding); a nearest up-sampling from scale ``k``
        and its convolution add ``2^k + 2^{k-1}``; the two 7x7 convolutions add 3 each. With ``n`` down-samplings
        and ``b`` residual blocks (two convolutions each at scale ``n``):

        .. math:: R = 6 + \\sum_{k<n} 2^{k+1} + 2b\\,2^n + \\sum_{k=1}^{n} 3 \\cdot 2^{k-1}
                  = 1 + 5 \\cdot 2^n + b\\,2^{n+1}

        an upper bound (93 for the paper's ``n = 2``, ``b = 9``, whose measured support is 87; ``tests/test_models.py``).

        >>> ResnetGenerator(width=4, blocks=9).local_radius
        93
        """
        return 1 + 5 * 2**self.n_down + self.blocks * 2 ** (self.n_down + 1)

    def _load_from_state_dict(
        self, state_dict: dict[str, torch.Tensor], prefix: str, *args, **kwargs
    ) -> None:
        """Also read weights saved before the up-sampling and its convolution became one layer.

        Those had an ``nn.Upsample`` entry before each up-sampling convolution, so every layer from the
        first up-sampling on sat one index further per up-sampling up to it.
        """
        ups = [i for i, m in enumerate(self.model) if isinstance(m, NearestUpsampleConv2d)]
        if ups and f"{prefix}model.{ups[0]}.weight" not in state_dict:
            shift = [sum(u <= i for u in ups) for i in range(len(self.model))]
            for i in range(ups[0], len(self.model)):
                old, new = f"{prefix}model.{i + shift[i]}.", f"{prefix}model.{i}."
                for key in [k for k in state_dict if k.startswith(old)]:
                    state_dict[new + key[len(old) :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual:
            return clamp_gan_range(x + 2.0 * self.model(x))
        return self.model(x)
