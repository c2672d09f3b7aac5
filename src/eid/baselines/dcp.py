"""Dark Channel Prior dehazing (He, Sun, Tang, TPAMI 2011) with guided-filter refinement (He et al., TPAMI 2013).

Everything is batched torch on ``(B,C,H,W)`` tensors in ``[0,1]`` (``C`` = 1 or 3) and runs on the
device of its input; no per-pixel Python loops.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from deepinv.models import Reconstructor
from torch import Tensor

from eid.errors import EIDError

#: Rec. 601 luma weights, the usual RGB -> grey conversion (OpenCV's ``cvtColor``).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def min_filter(x: Tensor, size: int) -> Tensor:
    """Grey erosion of ``x`` ``(B,C,H,W)`` with a ``size x size`` square, edges replicated.

    Separable (a column then a row min-filter), each 1-D pass by doubling: the minimum over windows
    of length ``L`` gives the one over ``2L`` with one ``torch.minimum`` of two shifted views, so a
    pass costs ``log2(size) + 1`` elementwise operations instead of ``size`` comparisons per pixel.
    """
    if size <= 1:
        return x
    lo, hi = (size - 1) // 2, size // 2
    y = _min_1d(F.pad(x, (0, 0, lo, hi), mode="replicate"), size, dim=-2)
    return _min_1d(F.pad(y, (lo, hi, 0, 0), mode="replicate"), size, dim=-1)


def _min_1d(y: Tensor, size: int, dim: int) -> Tensor:
    """Minimum over every window of ``size`` consecutive entries along ``dim`` (output shrinks by ``size-1``)."""
    n = y.shape[dim] - size + 1
    length = 1
    while 2 * length <= size:
        m = y.shape[dim] - length
        y = torch.minimum(y.narrow(dim, 0, m), y.narrow(dim, length, m))
        length *= 2
    return torch.minimum(y.narrow(dim, 0, n), y.narrow(dim, size - length, n))


def _window_sum_1d(x: Tensor, r: int, dim: int) -> tuple[Tensor, Tensor]:
    """Sums of ``x`` over ``[i-r, i+r]`` along ``dim``, clipped to the image, and the window lengths."""
    n = x.shape[dim]
    pad = [0] * (2 * (x.ndim - 1 - dim % x.ndim)) + [1, 0]
    c = F.pad(torch.cumsum(x, dim=dim), pad)  # c[i] = sum of x[:i]
    idx = torch.arange(n, device=x.device)
    hi, lo = (idx + r + 1).clamp(max=n), (idx - r).clamp(min=0)
    return c.index_select(dim, hi) - c.index_select(dim, lo), (hi - lo).to(x.dtype)


def box_filter(x: Tensor, r: int) -> Tensor:
    r"""Mean of ``x`` ``(B,C,H,W)`` over the ``(2r+1) x (2r+1)`` window around each pixel.

    Windows are clipped at the image border and the sum is divided by the number of pixels actually
    inside (as in He's MATLAB ``boxfilter(I, r) ./ boxfilter(ones, r)``). Cumulative sums make the
    cost O(1) per pixel whatever ``r`` (float32 sums: absolute error about 1e-6 on 4000-pixel rows).

    >>> box_filter(torch.arange(4.0).view(1, 1, 1, 4), 1).flatten().tolist()
    [0.5, 1.0, 2.0, 2.5]
    """
    s, nh = _window_sum_1d(x, r, dim=-2)
    s, nw = _window_sum_1d(s, r, dim=-1)
    return s / (nh[:, None] * nw[None, :])


def guided_filter(guide: Tensor, src: Tensor, r: int, eps: float) -> Tensor:
    r"""Grey-guide guided filter (He, Sun, Tang, ECCV 2010 / TPAMI 2013).

    Fits ``q = a_k I + b_k`` in every ``(2r+1)^2`` window :math:`\omega_k` of the guide ``I``:

    .. math:: a_k = \frac{\mathrm{cov}_k(I, p)}{\mathrm{var}_k(I) + \epsilon}, \quad
              b_k = \bar p_k - a_k \bar I_k, \quad q = \bar a\, I + \bar b

    where bars are window means (:func:`box_filter`). ``guide`` and ``src`` are ``(B,1,H,W)``.
    ``r`` is the radius: window = ``2r+1`` (He-Zhang's ``image_dehaze`` passes 60 as the window
    *size*, i.e. radius about 30).
    """
    mean_i, mean_p, mean_ip, mean_ii = box_filter(
        torch.cat([guide, src, guide * src, guide * guide], 1), r
    ).split(1, 1)
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    mean_a, mean_b = box_filter(torch.cat([a, b], 1), r).split(1, 1)
    return mean_a * guide + mean_b


def to_grey(x: Tensor) -> Tensor:
    """``(B,3,H,W)`` -> Rec. 601 luma ``(B,1,H,W)``; single-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


class DarkChannelPrior(Reconstructor):
    r"""Dark Channel Prior dehazing (He, Sun, Tang, TPAMI 2011).

    For a hazy image ``I`` ``(B,C,H,W)`` in ``[0,1]`` and patch :math:`\Omega` of ``patch x patch`` pixels:

    1. dark channel :math:`I^{dark}(x) = \min_{y\in\Omega(x)} \min_c I^c(y)` (edge-replicated erosion);
    2. airlight ``A``: among the ``top`` fraction (0.1 %) of pixels with the largest dark channel, the
       input pixel with the highest intensity, intensity = mean over channels; ``A`` is that pixel's colour
       (``grey_airlight``: its mean over the channels, for achromatic haze such as daylight);
    3. raw transmission :math:`\tilde t = 1 - \omega \min_{\Omega}\min_c (I^c / A^c)`;
    4. refinement: guided filter of :math:`\tilde t` with the grey (Rec. 601) input as guide, radius
       ``gf_radius`` (window ``2r+1``) and ``gf_eps``; then clamped to ``[t0, 1]``;
    5. recovery :math:`J = (I - A) / \max(t, t_0) + A`, clipped to ``[0,1]``.

    Single-channel images use their only channel for every step. Each image of a batch is processed
    independently, so a batch gives the same results as images one by one.

    :param int patch: patch size for the dark channel (15 as in the paper for ~600x400 images).
    :param float omega: fraction of haze removed (0.95 keeps a little for depth perception).
    :param float top: fraction of brightest dark-channel pixels searched for the airlight.
    :param int gf_radius: guided-filter radius ``r`` (window ``2r+1``); 0 disables refinement.
    :param float gf_eps: guided-filter regulariser.
    :param float t0: lower bound on the transmission.
    :param bool grey_airlight: one airlight value for all channels (the picked pixel's mean): on a small image
        the brightest hazy pixel is often a coloured object, and its colour then tints the whole result.
    :param float set_weight: weight ``w`` of a set's airlight in each image's, ``A = w A_set + (1 - w) A_image``
        (:meth:`fit_set_airlight` estimates ``A_set`` from images of the same kind). DCP reads ``A`` where the haze is
        opaque, and an image without such a region (a near scene, a small crop) only gives a guess; images of one
        atmosphere or camera share most of it. 0 (the default): each image's own, as He et al.
    :param int channels: with ``set_weight``, the images' channels (the shape of ``A_set``).

    >>> dcp = DarkChannelPrior()
    >>> y = torch.rand(2, 3, 32, 32)
    >>> dcp(y).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        patch: int = 15,
        omega: float = 0.95,
        top: float = 1e-3,
        gf_radius: int = 60,
        gf_eps: float = 1e-3,
        t0: float = 0.1,
        grey_airlight: bool = False,
        set_weight: float = 0.0,
        channels: int = 3,
    ) -> None:
        super().__init__()
        if not 0 <= set_weight <= 1:
            raise EIDError(
                f"set_weight {set_weight} must be within [0, 1] (0: each image's own airlight)"
            )
        self.patch, self.omega, self.top = patch, omega, top
        self.gf_radius, self.gf_eps, self.t0 = gf_radius, gf_eps, t0
        self.grey_airlight, self.set_weight = grey_airlight, set_weight
        self.set_fitted = False  # a Python flag, so that the check costs no device sync per call
        if set_weight > 0:  # set by fit_set_airlight or loaded with a DCP-input dehazer's weights
            self.register_buffer("set_airlight", torch.full((1, channels, 1, 1), float("nan")))
            self.register_load_state_dict_post_hook(DarkChannelPrior._mark_loaded)

    def dark_channel(self, x: Tensor) -> Tensor:
        """:math:`\\min_\\Omega \\min_c x^c`, shape ``(B,1,H,W)``."""
        return min_filter(x.amin(1, keepdim=True), self.patch)

    def airlight(self, y: Tensor, dark: Tensor) -> Tensor:
        """``A`` ``(B,C,1,1)``: each image's own (:meth:`own_airlight`), pooled with the set's by ``set_weight``."""
        a = self.own_airlight(y, dark)
        if not self.set_weight:
            return a
        if not self.set_fitted:
            raise EIDError(
                "this DCP pools each image's airlight with a set's, which is not estimated yet; call "
                "fit_set_airlight(images) first (stage 2 does it from its hazy images)"
            )
        return torch.lerp(a, self.set_airlight.to(a.dtype).expand_as(a), self.set_weight)

    def own_airlight(self, y: Tensor, dark: Tensor) -> Tensor:
        """The image's own ``A`` ``(B,C,1,1)``: :meth:`brightest_haze`, or its mean over the channels with
        ``grey_airlight``."""
        a = self.brightest_haze(y, dark)
        return a.mean(1, keepdim=True).expand_as(a) if self.grey_airlight else a

    @torch.no_grad()
    def fit_set_airlight(self, images: Iterable[Tensor]) -> DarkChannelPrior:
        """Set ``A_set`` to the mean of the images' own airlights (``(C,H,W)`` each, any sizes); returns self."""
        own = [self.own_airlight(y[None], self.dark_channel(y[None]))[0] for y in images]
        if not own:
            raise EIDError("no images to estimate the set's airlight from")
        self.set_airlight.copy_(torch.stack(own).mean(0, keepdim=True))
        self.set_fitted = True
        return self

    @staticmethod
    def _mark_loaded(module: DarkChannelPrior, incompatible: object) -> None:
        """After a state dict is loaded: the set's airlight is usable when the loaded one is finite."""
        module.set_fitted = bool(torch.isfinite(module.set_airlight).all())

    def brightest_haze(self, y: Tensor, dark: Tensor) -> Tensor:
        """Colour ``(B,C,1,1)`` of the brightest input pixel among the top dark-channel pixels."""
        b, c = y.shape[:2]
        k = max(1, round(self.top * dark[0].numel()))
        candidates = dark.flatten(1).topk(k, dim=1).indices  # (B,k)
        pixels = y.flatten(2)  # (B,C,HW)
        intensity = pixels.mean(1).gather(1, candidates)  # (B,k)
        best = candidates.gather(1, intensity.argmax(1, keepdim=True))  # (B,1)
        return pixels.gather(2, best[:, None, :].expand(b, c, 1)).view(b, c, 1, 1)

    def transmission(self, y: Tensor, airlight: Tensor) -> Tensor:
        """Refined transmission ``(B,1,H,W)`` in ``[t0, 1]``."""
        t = 1 - self.omega * self.dark_channel(y / airlight.clamp_min(1e-6))
        if self.gf_radius > 0:
            t = guided_filter(to_grey(y), t, self.gf_radius, self.gf_eps)
        return t.clamp(self.t0, 1.0)

    def estimate(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(J, t, A)``: dehazed ``(B,C,H,W)``, transmission ``(B,1,H,W)``, airlight ``(B,C,1,1)``.

        Differentiable almost everywhere (the minima and the airlight's pixel choice pass the gradient of
        the values they pick), so a dehazer that starts from DCP can be trained through it."""
        if y.ndim != 4 or y.shape[1] not in (1, 3):
            raise EIDError(
                f"DCP expects images of shape (B,1|3,H,W), got {tuple(y.shape)}; drop alpha or add a batch dimension"
            )
        a = self.airlight(y, self.dark_channel(y))
        return (*self.recover(y, a), a)

    def recover(self, y: Tensor, airlight: Tensor) -> tuple[Tensor, Tensor]:
        """``(J, t)`` for hazy ``y`` and a given airlight ``(B,C,1,1)``: with ``A`` fixed every step is local, each
        output pixel depending on inputs within :attr:`radius` of it, so large images can be recovered in tiles
        (:mod:`eid.inference.dcp_tiles`)."""
        t = self.transmission(y, airlight)
        return ((y - airlight) / t + airlight).clamp(0, 1), t

    @property
    def radius(self) -> int:
        """``R`` of :meth:`recover`: the dark channel's half patch, plus the guided filter's two box means."""
        return self.patch // 2 + 2 * self.gf_radius

    def forward(self, y: Tensor, physics: object = None, **kwargs) -> Tensor:
        """Dehaze ``y`` ``(B,C,H,W)``; ``physics`` is ignored (DCP is model-free), kept for deepinv's API."""
        return self.estimate(y)[0]
