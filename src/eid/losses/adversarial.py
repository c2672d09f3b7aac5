"""Optional adversarial prior on the dehazer: unpaired clear images vs. dehazed estimates (LSGAN)."""

from __future__ import annotations

from torch import Tensor, nn


class AdversarialPriorLoss(nn.Module):
    r"""Generator side :math:`\lambda\,\mathbb{E}\,(D(f_\theta(y)) - 1)^2`: push ``f(y)`` towards clear images.

    Least-squares GAN (as the CycleGAN stage); ``D`` is a PatchGAN, so the mean runs over patches.

    :param float weight: :math:`\lambda` (0 disables the prior; off by default in :class:`EIDConfig`).
    """

    def __init__(self, weight: float = 0.01) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x_net: Tensor, D: nn.Module) -> Tensor:
        return self.weight * (D(x_net) - 1.0).square().mean()


class AdversarialPriorDiscriminatorLoss(nn.Module):
    r"""Discriminator side :math:`\tfrac12\,[\mathbb{E}(D(x) - 1)^2 + \mathbb{E}\,D(f_\theta(y))^2]`.

    ``x`` are unpaired clear images; ``x_net`` is detached so no gradient reaches the dehazer.
    """

    def forward(self, x: Tensor, x_net: Tensor, D: nn.Module) -> Tensor:
        return 0.5 * ((D(x) - 1.0).square().mean() + D(x_net.detach()).square().mean())
