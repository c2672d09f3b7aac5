r"""The scattering model with each hazy image's own maps, as the dark channel prior reads them from it.

.. math:: H_y(x) = \hat t(y) \odot x + (1 - \hat t(y))\,\hat A(y)

A learned operator ``H(x)`` must guess the haze from the *clear* image: its transmission is a depth
estimate made from ``x`` alone, and on outdoor scenes it does not follow the depth (correlation 0.04 on the
natural benchmark, ``docs/benchmarks.md``). Stage 2 then pulls the dehazer towards that wrong haze, and it
removes haze where there is none. The hazy image itself shows where the haze is: :class:`ObservedHaze`
takes ``t_hat(y)`` and ``A_hat(y)`` from :class:`~eid.baselines.dcp.DarkChannelPrior` on each hazy batch
(:meth:`ObservedHaze.fit`):

- the haze-consistency term compares :math:`H_y(f(y))` with :attr:`ObservedHaze.reachable`, :math:`H_y(\hat J)`
  for DCP's recovery :math:`\hat J` clipped to ``[0, 1]``. That is ``y`` wherever an image in range explains it;
  elsewhere ``y`` cannot be reached, and its pull would spread through the dehazer's smooth gain and offset to the
  pixels around. The term is then :math:`\|\hat t \odot (f(y) - \hat J)\|^2`: an anchor at the DCP estimate;
- the equivariance term re-hazes :math:`T_g f(y)` with the transformed map :math:`T_g \hat t(y)` and the image's
  airlight (:class:`~eid.losses.EquivarianceLoss` transforms a spatial ``transmission`` buffer with the image).
"""

from __future__ import annotations

import torch

from eid.baselines.dcp import DarkChannelPrior
from eid.errors import EIDError
from eid.physics.asm import ASMHaze


class ObservedHaze(ASMHaze):
    r""":class:`~eid.physics.ASMHaze` whose ``transmission`` and ``airlight`` are set per hazy batch by :meth:`fit`.

    :param DarkChannelPrior dcp: the estimator of ``t_hat(y)`` and ``A_hat(y)`` (the dehazer's own when it
        starts from DCP, so both read the same airlight).

    >>> y = torch.rand(2, 3, 32, 32) * 0.5 + 0.4
    >>> physics = ObservedHaze(DarkChannelPrior(gf_radius=4)).fit(y)
    >>> tuple(physics.transmission.shape), tuple(physics.airlight.shape)
    ((2, 1, 32, 32), (2, 3, 1, 1))
    """

    def __init__(self, dcp: DarkChannelPrior) -> None:
        super().__init__(t_min=dcp.t0)
        self.dcp = dcp
        self.recovered: torch.Tensor | None = None

    @torch.no_grad()
    def fit(self, y: torch.Tensor) -> ObservedHaze:
        """Set the maps to the dark channel prior's estimate on hazy ``y`` ``(B,C,H,W)``; returns self. DCP's clipped
        recovery is kept too (``recovered``, not a buffer: the equivariance term must not transform it)."""
        self.recovered, self.transmission, airlight = self.dcp.estimate(y)
        self.airlight = airlight.contiguous()  # a grey airlight is an expanded view
        return self

    @property
    def reachable(self) -> torch.Tensor:
        """``H_y(J_hat)`` for the last :meth:`fit`: the hazy batch as far as images in ``[0, 1]`` explain it."""
        if self.recovered is None:
            raise EIDError("ObservedHaze has no hazy batch yet; call fit(y) first")
        return self.A(self.recovered)
