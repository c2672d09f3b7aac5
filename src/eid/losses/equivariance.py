"""Equivariance: dehazing a re-hazed transformed estimate must give back that estimate."""

from __future__ import annotations

import copy
from typing import Any

import torch
from deepinv.loss import EILoss
from deepinv.transform import Transform
from torch import Tensor, nn

from eid.losses.metrics import pixel_metric


class EquivarianceLoss(EILoss):
    r"""EID equivariance :math:`\alpha\,\| f_\theta(H_g(T_g \hat x)) - T_g \hat x \|`, :math:`\hat x = f_\theta(y)`.

    deepinv's :class:`~deepinv.loss.EILoss` with ``apply_noise=False`` (the haze operator is
    deterministic), extended for operators with per-image parameters (the ASM oracle's
    ``transmission`` and ``airlight`` buffers), which ``EILoss`` neither transforms nor repeats:

    - ``H_g`` keeps each image's airlight and, with ``transform_physics=True``, hazes ``T_g \hat x``
      with the *transformed* transmission ``T_g t`` (same group element): ``t`` is a property of the
      scene (``exp(-beta d)`` of its depth), so the rotated scene carries the rotated depth. With
      ``False`` the map stays in the sensor frame (haze fixed to the optics, e.g. a veil).
    - ``n_trans > 1`` repeats the per-image parameters in deepinv's transform-major order.

    An operator without such buffers (the learned CycleGAN ``G_AB``) is used unchanged, so the
    loss then equals ``EILoss``. With ``detach=True`` the target ``T_g \hat x`` (and hence
    ``H(T_g \hat x)``) is computed without gradient (``EILoss(no_grad=True)``); by default the
    gradient flows into both sides, as in the authors' code and original EI.

    :param deepinv.transform.Transform transform: the group, see :func:`eid.transforms.build_group`.
    :param float alpha: weight of the term (authors: 1).
    :param str norm: ``l2`` (mean squared error) or ``l1``.
    :param bool detach: stop the gradient through the target.
    :param bool transform_physics: transform a spatial transmission map with the image.
    """

    def __init__(
        self,
        transform: Transform,
        alpha: float = 1.0,
        norm: str = "l2",
        detach: bool = False,
        transform_physics: bool = True,
    ) -> None:
        super().__init__(
            transform=transform,
            metric=pixel_metric(norm),
            apply_noise=False,
            weight=alpha,
            no_grad=detach,
        )
        self._name = "equivariance"
        self.transform_physics = transform_physics

    def forward(self, x_net: Tensor, physics: Any, model: nn.Module, **kwargs: Any) -> Tensor:
        """``alpha * metric(model(H_g(x2), H_g), x2)`` with ``x2 = T_g(x_net)``."""
        params = self.T.get_params(x_net)
        if self.no_grad:
            with torch.no_grad():
                x2 = self.T.transform(x_net, **params).detach()
        else:
            x2 = self.T.transform(x_net, **params)
        physics2 = self.transformed_physics(
            physics, params, batch=len(x_net), n_trans=len(x2) // len(x_net)
        )
        x3 = model(physics2.A(x2), physics2)
        return self.weight * self.metric(x3, x2)

    def transformed_physics(
        self, physics: Any, params: dict[str, Tensor], batch: int, n_trans: int
    ) -> Any:
        """The operator for the transformed batch, its per-image parameters transformed or repeated.

        Per-image parameters are the operator's 4-D buffers ``(B|1, ., H|1, W|1)`` (ASM ``transmission``
        and ``airlight``; any analytic operator written the same way): spatial maps are transformed
        with the image when ``transform_physics``, the others are repeated for the ``n_trans`` copies.
        The result is a shallow copy with its own buffer table (deepinv's ``Physics.clone``
        deep-copies through ``inspect.getattr_static`` and costs ~1 s per call); the batch's operator
        is left untouched. Operators without such buffers (the learned ``G_AB``) are returned as is.
        """
        changed: dict[str, Tensor] = {}
        for name, value in getattr(physics, "_buffers", {}).items():
            if not isinstance(value, Tensor) or value.ndim != 4:
                continue
            if value.shape[-2:] != (1, 1) and self.transform_physics:
                changed[name] = self.T.transform(value.expand(batch, -1, -1, -1), **params)
            elif value.shape[0] > 1 and n_trans > 1:
                changed[name] = value.repeat(n_trans, 1, 1, 1)
        if not changed:
            return physics
        physics2 = copy.copy(physics)
        physics2._buffers = {**physics._buffers, **changed}
        return physics2
