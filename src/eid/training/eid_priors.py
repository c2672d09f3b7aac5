"""Stage 2's priors from unpaired clear images: the adversarial prior (a PatchGAN ``D`` and deepinv's LSGAN losses)
and the background prior (:class:`~eid.losses.BackgroundPrior`), set up, started and fed with clear images."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from eid.errors import EIDError
from eid.losses import BackgroundPrior
from eid.models.discriminators import PatchGANDiscriminator
from eid.training.eid_config import EIDConfig

BACKGROUND_CROPS = 256
"""Clear crops the background level is read from (a few per image when there are fewer images; fixed seeds)."""


class ClearPriors:
    """Mixin of :class:`~eid.training.eid_module.EIDModule` (whose ``config``, ``group_rng`` and ``device`` it reads).

    ``clear`` items are dicts with the image under ``clear`` or, for a
    :class:`~eid.data.datasets.HazyFolder` opened on the clear folder (a plain image folder), under ``hazy``; they
    are indexed by ``(index, item_seed)``.
    """

    def setup_priors(self, config: EIDConfig, clear: Any) -> None:
        """Keep ``clear``; build ``D`` for the adversarial prior and the background prior when their weights are on."""
        self.clear = clear
        if config.uses_clear and clear is None:
            raise EIDError(
                "the priors from clear images need unpaired clear images; pass --clear DIR"
            )
        self.adversarial = config.adversarial_weight > 0
        if self.adversarial:  # the stage-1 PatchGAN (the authors' CycleGAN D)
            self.discriminator = PatchGANDiscriminator(config.model.channels, norm=config.disc_norm)
        self.background = None
        if config.background_weight > 0:
            self.background = BackgroundPrior(config.background_weight, config.background_quantile)

    def start_priors(self) -> None:
        """At the start of fit: read the clear crops' background level; build the LSGAN losses on the device (deepinv
        fixes its label tensors' device at construction)."""
        if self.background is not None:
            per_image = -(-BACKGROUND_CROPS // len(self.clear))
            self.background.fit(
                self._clear_item(k, s) for k in range(len(self.clear)) for s in range(per_image)
            )
        if self.adversarial:
            from deepinv.loss.adversarial import (
                SupAdversarialDiscriminatorLoss,
                SupAdversarialGeneratorLoss,
            )

            self.adversarial_loss = SupAdversarialGeneratorLoss(
                self.config.adversarial_weight, device=self.device
            )
            self.discriminator_loss = SupAdversarialDiscriminatorLoss(device=self.device)

    def _clear_batch(self, n: int) -> Tensor:
        """``n`` unpaired clear images drawn with the module's (checkpointed) generator."""
        keys = torch.randint(len(self.clear), (n,), generator=self.group_rng).tolist()
        seeds = torch.randint(2**62, (n,), generator=self.group_rng).tolist()
        return torch.stack([self._clear_item(k, s) for k, s in zip(keys, seeds)]).to(self.device)

    def _clear_item(self, index: int, seed: int) -> Tensor:
        item = self.clear[(index, seed)]
        return item.get("clear", item.get("hazy"))
