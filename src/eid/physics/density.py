r"""A learned scattering operator with a per-image haze density: :math:`H_s(x) = t(x)^s\,x + (1 - t(x)^s)\,a(x)`.

A learned operator ``H`` is a function of the clear image, so it gives every view of a scene one haze
density. Real hazy sets hold the same kind of scene under light and dense haze (two days, two smoke levels),
and a fixed ``H`` then learns their average: the dehazer trained through it removes the same amount of haze
from every image, too much from light haze and too little from dense. With :math:`t = e^{-\beta d}`, the
density :math:`\beta` scales the exponent, so :math:`t^s` is the same scene under ``s`` times the
density. :class:`PerImageDensity` keeps the learned depth structure ``t(x)`` and airlight ``a(x)`` and fits
one ``s`` per hazy image, by grid search in log space, to an estimate ``z`` of its clear image:

.. math:: s_i = \arg\min_{s \in S} \lVert y_i - H_s(z_i) \rVert^2 .

The estimate is the dehazer's own network input (the dark channel prior or ``H^\dagger``), not ``f(y)``: a
density fitted to ``f(y)`` would co-adapt with it down to the trivial ``s \to 0``, ``f(y) = y``. ``s`` is a
per-image buffer (``density``, ``(B,1,1,1)``), so the equivariance term keeps it for the transformed images.

:meth:`PerImageDensity.at` gives the same operator at other densities. Stage 2 uses it to re-haze ``T_g f(y)`` at
each image's density times a random factor (``density_spread``): with one density per image, the pairs
``(H(T_g f(y)), T_g f(y))`` of the equivariance term hold the haze the batch holds, and the dehazer learns to remove
that amount whatever it sees; at spread densities it must read the amount from the image.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from deepinv.physics import Physics
from torch import Tensor

from eid.errors import EIDError
from eid.physics.asm import scatter


class PerImageDensity(Physics):
    r"""``H_s``: a scattering operator (anything with ``maps`` and ``A(x, transmission, airlight)``) whose
    transmission is raised to a per-image density ``s``, fitted by :meth:`fit`.

    :param physics: the frozen learned scattering operator (:class:`~eid.physics.ScatteringHaze`).
    :param tuple density_range: the smallest and largest ``s`` searched.
    :param int steps: grid points, spaced evenly in ``log s``.

    >>> from eid.physics import ScatteringHaze
    >>> from eid.models.scattering import ScatteringNet
    >>> physics = PerImageDensity(ScatteringHaze(ScatteringNet(3, 4, 2), ScatteringNet(3, 4, 2)))
    >>> x = torch.rand(2, 3, 8, 8)
    >>> torch.allclose(physics.A(x), physics.physics.A(x))  # s = 1 until fitted
    True
    """

    def __init__(
        self, physics: Any, density_range: tuple[float, float] = (0.25, 4.0), steps: int = 33
    ) -> None:
        super().__init__()
        if not hasattr(physics, "maps"):
            raise EIDError(
                "a per-image haze density needs a scattering operator (eid train-operator "
                "--operator-model scattering); use density: fixed with this operator"
            )
        low, high = density_range
        if not 0 < low <= 1 <= high:
            raise EIDError(f"density_range {density_range} must satisfy 0 < low <= 1 <= high")
        self.physics = physics
        self.register_buffer("density", torch.ones(1, 1, 1, 1))
        self.register_buffer(
            "grid", torch.logspace(math.log10(low), math.log10(high), steps).view(-1, 1, 1, 1, 1)
        )

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        """Haze ``x`` with its learned maps at each image's density."""
        maps = self.physics.maps(x)
        t = maps["transmission"] ** self.density
        return self.physics.A(x, transmission=t, airlight=maps["airlight"])

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        """The operator's own pseudo-inverse (its estimator sees the density in ``y``)."""
        return self.physics.A_dagger(y, **kwargs)

    def at(self, density: Tensor) -> PerImageDensity:
        """This operator at ``density`` (``(B,1,1,1)`` or a scalar tensor): a shallow copy sharing the networks."""
        moved = copy.copy(self)
        moved._buffers = {**self._buffers, "density": density}
        return moved

    @torch.no_grad()
    def fit(self, estimate: Tensor, y: Tensor) -> PerImageDensity:
        """Set ``density`` to each image's best ``s`` on the grid for clear ``estimate`` and hazy ``y``; returns self.

        The frozen networks run once; the grid is one broadcast scatter ``(S, B, C, H, W)``."""
        maps = self.physics.maps(estimate)
        residual = getattr(self.physics, "residual", None)
        extra = 0.0 if residual is None else residual(estimate)
        hazed = scatter(estimate, maps["transmission"] ** self.grid, maps["airlight"]) + extra
        errors = (hazed - y).square().flatten(2).mean(2)  # (S, B)
        self.density = self.grid.view(-1)[errors.argmin(0)].view(-1, 1, 1, 1).to(y.dtype)
        return self
