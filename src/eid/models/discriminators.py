"""PatchGAN discriminator for the CycleGAN stage: one real/fake score per overlapping image patch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eid.errors import EIDError
from eid.models.generators import init_normal

DISCRIMINATOR_NORMS = ("instance", "none")


class PatchGANDiscriminator(nn.Module):
    r"""``Conv4(C->w)-LReLU``, then ``Conv4-IN-LReLU`` doubling the width up to ``8w``, then ``Conv4(8w->1)``.

    The four feature convolutions use ``strides``; the default ``(2, 2, 2, 1)`` is the classic 70x70
    PatchGAN (each output value sees a 70x70 input patch). ``(2, 2, 2, 2)`` is the layout of the authors'
    code (pytorch-GAN CycleGAN: output ``H/16 x W/16``, 94x94 patches). Both have 2,764,737 parameters for
    3 input channels and ``w = 64``. LeakyReLU slope 0.2, InstanceNorm without affine weights, N(0, 0.02)
    initialisation. The last convolution is preceded by a ``(1,0,1,0)`` zero pad, as upstream.

    ``norm="none"`` drops the instance norms. Why: instance norm removes each feature map's mean and scale,
    and after a LeakyReLU of slope 0.2 the first layer is nearly linear, so the authors' discriminator is
    nearly blind to a global change of brightness and contrast, which is what haze is
    (``t x + (1 - t) a``). It then cannot tell an operator that adds no haze from one that does.

    >>> PatchGANDiscriminator(3, width=8).receptive_field
    70
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        strides: Sequence[int] = (2, 2, 2, 1),
        norm: str = "instance",
    ) -> None:
        super().__init__()
        if norm not in DISCRIMINATOR_NORMS:
            raise EIDError(
                f"discriminator norm {norm!r} is not valid; use one of {', '.join(DISCRIMINATOR_NORMS)}"
            )
        layers: list[nn.Module] = []
        cin = in_channels
        for i, stride in enumerate(strides):
            cout = width * 2 ** min(i, 3)
            layers.append(nn.Conv2d(cin, cout, 4, stride, padding=1))
            if i > 0 and norm == "instance":
                layers.append(nn.InstanceNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        layers += [nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(cin, 1, 4, padding=1)]
        self.model = nn.Sequential(*layers)
        self.strides = tuple(strides)
        init_normal(self)

    @property
    def receptive_field(self) -> int:
        """Side of the input patch seen by one output value: ``r = 4; r = (r - 1) * s + 4`` backwards."""
        r = 4
        for stride in reversed(self.strides):
            r = (r - 1) * stride + 4
        return r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def min_side(norm: str = "instance", strides: Sequence[int] = (2, 2, 2, 1)) -> int:
    """Smallest square input :class:`PatchGANDiscriminator` accepts: every 4x4 convolution needs 2 pixels
    (4 with its padding), and instance norm needs more than one position.

    >>> min_side("instance"), min_side("none")
    (24, 16)
    """

    def fits(side: int) -> bool:
        for i, stride in enumerate(strides):
            if side < 2:
                return False
            side = (side - 2) // stride + 1
            if i > 0 and norm == "instance" and side < 2:
                return False
        return side >= 1

    return next(side for side in range(1, 4096) if fits(side))
