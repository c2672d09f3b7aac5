"""Analytic haze operator: the atmospheric scattering model (ASM) as a deepinv ``Physics``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from eid.errors import EIDError

ParamLike = Tensor | float | Sequence[float]


def transmission_from_depth(depth: Tensor, beta: Tensor | float) -> Tensor:
    r"""Beer-Lambert transmission :math:`t = \exp(-\beta d)`.

    :param torch.Tensor depth: depth ``d`` (any shape, typically ``(B,1,H,W)``), in the unit ``beta`` is per.
    :param beta: scattering coefficient, a float or a ``(B,)`` tensor (one value per image).

    >>> transmission_from_depth(torch.zeros(1, 1, 2, 2), 1.0).flatten().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    beta = torch.as_tensor(beta, dtype=depth.dtype, device=depth.device)
    if beta.ndim == 1:
        beta = beta.view(-1, *([1] * (depth.ndim - 1)))
    return torch.exp(-beta * depth)


def scatter(x: Tensor, t: Tensor, a: Tensor) -> Tensor:
    r"""The scattering model :math:`x \odot t + a (1 - t)` (``t``, ``a`` broadcast against ``x``)."""
    return x * t + a * (1 - t)


def unscatter(y: Tensor, t: Tensor, a: Tensor, t_min: float) -> Tensor:
    r"""Its inverse :math:`(y - a (1 - t)) / \max(t, t_{\min})`, exact where ``t >= t_min``."""
    return (y - a * (1 - t)) / t.clamp_min(t_min)


class ASMHaze(Physics):
    r"""Atmospheric scattering model :math:`y = A(x) = x \odot t + a\,(1 - t)`.

    ``x`` is the clear image ``(B,C,H,W)`` in ``[0,1]``, ``t`` the transmission map (``t = exp(-beta d)``
    for depth ``d``) and ``a`` the airlight. Both are plain buffers named ``transmission`` and
    ``airlight`` so that ``.to(device)``, ``state_dict`` and ``clone()`` handle them and a caller can
    transform ``t`` together with the image (``physics.update(transmission=T(t))``):

    - ``transmission``: ``(B|1, 1, H|1, W|1)``, values in ``(0, 1]``;
    - ``airlight``: ``(B|1, C|1, 1, 1)``, values in ``[0, 1]`` (grey when ``C`` is 1).

    Set them with :meth:`update` (deepinv convention) or as keyword arguments of :meth:`A`. Floats and
    per-channel sequences are accepted and converted; other shapes raise :class:`~eid.errors.EIDError`.

    The pseudo-inverse is exact wherever ``t >= t_min``:

    .. math:: A^\dagger(y) = \frac{y - a\,(1 - t)}{\max(t, t_{\min})}

    and clamps ``t`` below ``t_min`` because the inversion multiplies noise by ``1/t`` there.

    :param transmission: initial transmission (default 1, i.e. no haze).
    :param airlight: initial airlight (default 1, white).
    :param float t_min: lower bound on ``t`` in :meth:`A_dagger`.

    >>> physics = ASMHaze(transmission=0.5, airlight=0.8)
    >>> x = torch.full((1, 3, 4, 4), 0.2)
    >>> round(physics.A(x)[0, 0, 0, 0].item(), 4)
    0.5
    >>> torch.allclose(physics.A_dagger(physics.A(x)), x)
    True
    """

    def __init__(
        self, transmission: ParamLike = 1.0, airlight: ParamLike = 1.0, t_min: float = 0.1, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.t_min = t_min
        self.register_buffer("transmission", _as_transmission(transmission))
        self.register_buffer("airlight", _as_airlight(airlight))

    def A(
        self,
        x: Tensor,
        transmission: ParamLike | None = None,
        airlight: ParamLike | None = None,
        **kwargs,
    ) -> Tensor:
        r"""Haze ``x``: :math:`x \odot t + a (1 - t)`, after optionally updating ``t`` and ``a``."""
        self.update_parameters(transmission=transmission, airlight=airlight)
        self._check_compatible(x)
        return scatter(x, self.transmission, self.airlight)

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:
        r"""Invert the haze: :math:`(y - a(1-t)) / \max(t, t_{\min})` (exact where ``t >= t_min``)."""
        self._check_compatible(y)
        return unscatter(y, self.transmission, self.airlight, self.t_min)

    def update_parameters(
        self, transmission: ParamLike | None = None, airlight: ParamLike | None = None, **kwargs
    ) -> None:
        """Replace ``transmission`` and/or ``airlight`` (floats converted, shapes checked); ``None`` keeps them."""
        params = {}
        if transmission is not None:
            params["transmission"] = _as_transmission(transmission)
        if airlight is not None:
            params["airlight"] = _as_airlight(airlight)
        super().update_parameters(**params, **kwargs)

    def _check_compatible(self, x: Tensor) -> None:
        """Raise a clear error when ``t`` or ``a`` cannot broadcast against the image ``x``."""
        if x.ndim != 4:
            raise EIDError(
                f"ASMHaze expects images of shape (B,C,H,W), got {tuple(x.shape)}; add a batch dimension"
            )
        for name, param in (("transmission", self.transmission), ("airlight", self.airlight)):
            if any(p not in (1, s) for p, s in zip(param.shape, x.shape)):
                raise EIDError(
                    f"ASMHaze {name} of shape {tuple(param.shape)} does not fit images of shape {tuple(x.shape)}; "
                    "give one value per image (or 1) and maps of the image's size"
                )


def _as_tensor(value: ParamLike) -> Tensor:
    return value if isinstance(value, Tensor) else torch.as_tensor(value, dtype=torch.float32)


def _as_transmission(value: ParamLike) -> Tensor:
    """A float or a ``(B|1,1,H|1,W|1)`` tensor -> a 4-D transmission tensor."""
    t = _as_tensor(value)
    if t.ndim == 0:
        return t.reshape(1, 1, 1, 1)
    if t.ndim != 4 or t.shape[1] != 1:
        raise EIDError(
            f"transmission must be a float or a (B,1,H,W) tensor, got shape {tuple(t.shape)}; reshape it"
        )
    return t


def _as_airlight(value: ParamLike) -> Tensor:
    """A float, a per-channel sequence ``(C,)`` or a ``(B|1,C|1,1,1)`` tensor -> a 4-D airlight tensor."""
    a = _as_tensor(value)
    if a.ndim == 0:
        return a.reshape(1, 1, 1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1, 1, 1)
    if a.ndim != 4 or a.shape[2:] != (1, 1):
        raise EIDError(
            f"airlight must be a float, a (C,) or a (B,C,1,1) tensor, got shape {tuple(a.shape)}; reshape it"
        )
    return a
