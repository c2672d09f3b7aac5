"""BRISQUE (Mittal, Moorthy & Bovik, "No-Reference Image Quality Assessment in the Spatial Domain", IEEE TIP 2012).

Two models, chosen by name, both evaluated in torch (float64, CPU or GPU) without libsvm:

``brisque-live`` (default, registered as ``brisque``)
    The original LIVE MATLAB release: features of ``brisque_feature.m`` (MATLAB ``rgb2gray`` of the 8-bit image,
    rounded; ``filter2`` with zero padding; MSCN ``(I - mu) / (sigma + 1)`` on 0-255; a GGD moment-matching grid
    fit ``[alpha, sigma^2]`` of the coefficients; for the ``circshift`` pair products along (0,1), (1,0), (1,1),
    (-1,1) an AGGD grid fit ``[alpha, mean, std_l^2, std_r^2]``; scale 2 = MATLAB ``imresize(0.5)``), scaled
    by ``allrange`` to [-1, 1] and scored by the ``allmodel`` epsilon-SVR. It is the canonical model behind
    published MATLAB BRISQUE values, hence the default.
``brisque-pkg``
    The model of the ``brisque`` 0.2.0 PyPI package (the LearnOpenCV port): Rec.709 grey in [0,1], zero-padded
    MSCN with ``C = 1/255``, AGGD shape by root finding, pair products without wrap-around (right side
    ``x >= 0``), scale 2 = OpenCV ``resize(fx=0.5, INTER_CUBIC)`` (no antialiasing), min/max scaling. Same
    0-100 scale, different numbers; kept to compare with tools built on that package.

The SVR is ``score = sum_i coef_i exp(-gamma |x - sv_i|^2) - rho``. Inputs are brought to 8-bit levels first.
With a mask, the fits use only the pixels (and pixel pairs) inside the mask after a 3-pixel erosion, so that
the 7x7 local statistics never see the outside; the mask follows the image to scale 2.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import gamma as gamma_fn

from eid.errors import EIDError
from eid.metrics.niqe import (
    _GAM,
    _MEAN,
    aggd_grid_fit,
    aggd_moments,
    aggd_sums,
    grid_argmin,
    grid_table,
    imresize,
    load_params,
    moments_of,
    band_rows,
    mscn,
    row_bands,
    to_levels,
)
from eid.metrics.registry import MetricSpec, register

_R_GGD = gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM) / gamma_fn(2 / _GAM) ** 2  # decreasing
_CONST = np.sqrt(gamma_fn(1 / _GAM)) / np.sqrt(gamma_fn(3 / _GAM))
MATLAB_GREY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
REC709_GREY = (0.2125, 0.7154, 0.0721)
LIVE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
MODELS = ("brisque-live", "brisque-pkg")


def _gaussian_window() -> torch.Tensor:
    """``fspecial('gaussian', 7, 7/6)`` normalised to sum 1."""
    y, x = np.indices((7, 7)) - 3
    k = np.exp(-(x**2 + y**2) / (2 * (7 / 6) ** 2))
    return torch.from_numpy(k / k.sum())


def _read_libsvm(text: str) -> dict[str, np.ndarray]:
    """Dense ``sv`` (N,36), ``coef`` (N,), ``gamma``, ``rho`` of a libsvm epsilon-SVR RBF text model."""
    head, body = text.split("\nSV\n", 1)
    meta = dict(line.split(" ", 1) for line in head.strip().splitlines())
    if meta.get("svm_type") != "epsilon_svr" or meta.get("kernel_type") != "rbf":
        raise EIDError("the vendored BRISQUE model is not an epsilon-SVR with RBF kernel; reinstall eid")
    coef, sv = [], []
    for line in body.strip().splitlines():
        parts = line.split()
        coef.append(float(parts[0]))
        row = np.zeros(36)
        for item in parts[1:]:
            i, v = item.split(":")
            row[int(i) - 1] = float(v)
        sv.append(row)
    return {"sv": np.array(sv), "coef": np.array(coef), "gamma": np.float64(meta["gamma"]), "rho": np.float64(meta["rho"])}


@lru_cache(maxsize=2)
def _model(name: str) -> dict[str, np.ndarray]:
    """SVR and feature scaling of model ``name``: ``lo``/``hi`` (feature range mapped to -1..1)."""
    if name == "brisque-live":
        folder = resources.files("eid.metrics._params")
        svr = _read_libsvm(folder.joinpath("brisque_live_allmodel").read_text().replace("\r\n", "\n"))
        lines = folder.joinpath("brisque_live_allrange").read_text().split()
        rng = np.array(lines[3:], dtype=np.float64).reshape(-1, 3)
        return {**svr, "lo": rng[:, 1], "hi": rng[:, 2]}
    if name == "brisque-pkg":
        svr = load_params("brisque_pkg_svm_model.npz")
        norm = load_params("brisque_pkg_normalize.npz")
        return {**svr, "lo": norm["min_"], "hi": norm["max_"]}
    raise EIDError(f"unknown BRISQUE model {name!r}; choose from: {', '.join(MODELS)}")


def _cv2_half_matrix(n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of OpenCV ``resize(fx=0.5, INTER_CUBIC)`` along one axis (a = -0.75, clamped
    borders, ``n_out = rint(n_in / 2)``): output ``i`` samples ``2i + 0.5`` with weights (-3, 19, 19, -3) / 32."""
    n_out = int(np.rint(n_in * 0.5))
    mat = np.zeros((n_out, n_in))
    taps = np.array([-0.09375, 0.59375, 0.59375, -0.09375])
    for k, w in enumerate(taps):
        src = np.clip(2 * np.arange(n_out) - 1 + k, 0, n_in - 1)
        np.add.at(mat, (np.arange(n_out), src), w)
    return mat


def _cv2_half(img: torch.Tensor) -> torch.Tensor:
    rows = torch.from_numpy(_cv2_half_matrix(img.shape[-2])).to(img)
    cols = torch.from_numpy(_cv2_half_matrix(img.shape[-1])).to(img)
    return rows @ img @ cols.T


def _phi_inverse(target: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """Solve ``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) = target`` for ``a`` by bisection on ``log a``
    (the package calls ``scipy.optimize.root`` from 0.2; the root is unique since the ratio increases in ``a``)."""
    lo = torch.full_like(target, math.log(0.01))
    hi = torch.full_like(target, math.log(100.0))
    for _ in range(iters):
        mid = (lo + hi) / 2
        a = torch.exp(mid)
        phi = torch.exp(2 * torch.lgamma(2 / a) - torch.lgamma(1 / a) - torch.lgamma(3 / a))
        below = phi < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return torch.exp((lo + hi) / 2)


def _flat(x: torch.Tensor, m: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    return x.flatten(1), None if m is None else m.flatten(1).to(x)


def _live_scale(img: torch.Tensor, mask: torch.Tensor | None, window: torch.Tensor) -> list[torch.Tensor]:
    """18 ``brisque_feature.m`` features of one scale for ``img`` (B,1,H,W) on 0-255.

    The statistics are sums, so they are accumulated over bands of rows (cache-sized pieces); each band is
    taken with one row of wrap-around on either side so that the ``circshift`` partners are at hand.
    """
    coef, _ = mscn(img, window, "zeros")
    h = coef.shape[-2]
    weight = None if mask is None else mask.to(coef)
    total = torch.zeros(())
    step = band_rows(coef)
    for r0 in range(0, h, step):
        band = coef[..., r0 : r0 + step, :]
        rows = torch.arange(r0 - 1, r0 + band.shape[-2] + 1, device=coef.device) % h
        ext = coef.index_select(-2, rows)
        wext = None if weight is None else weight.index_select(-2, rows)
        parts = [aggd_sums(band, (-2, -1), None if wext is None else wext[..., 1:-1, :])]
        for di, dj in LIVE_SHIFTS:
            partner = torch.roll(ext[..., 1 - di : 1 - di + band.shape[-2], :], dj, dims=-1)
            w = None
            if wext is not None:
                w = wext[..., 1:-1, :] * torch.roll(wext[..., 1 - di : 1 - di + band.shape[-2], :], dj, dims=-1)
            parts.append(aggd_sums(band * partner, (-2, -1), w))
        total = total + torch.stack(parts, -2)
    ggd = moments_of(total[..., 0, 0, :])
    feats = [torch.from_numpy(_GAM).to(coef)[grid_argmin(_R_GGD, ggd["sq"] / ggd["abs"] ** 2)], ggd["sq"]]
    for k in range(1, 5):
        m = moments_of(total[..., 0, k, :])
        idx, alpha = aggd_grid_fit(m)
        mean = (m["right"] - m["left"]) * grid_table(_MEAN, idx) * grid_table(_CONST, idx)
        feats += [alpha, mean, m["left"] ** 2, m["right"] ** 2]
    return feats


def _pkg_fit(x: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """``brisque`` 0.2.0 AGGD fit: alpha (root of phi = R_hat), mean, sigma_l^2, sigma_r^2 (right: x >= 0)."""
    m = aggd_moments(x, w, right_ge=True)
    g = m["left"] / m["right"]
    r_hat = m["abs"] ** 2 / m["sq"] * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _phi_inverse(r_hat)
    const = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    mean = (m["right"] - m["left"]) * const * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    return alpha, mean, m["left"] ** 2, m["right"] ** 2


def _pkg_scale(img: torch.Tensor, mask: torch.Tensor | None, window: torch.Tensor) -> list[torch.Tensor]:
    """18 ``brisque`` 0.2.0 features of one scale for ``img`` (B,1,H,W) in [0,1]."""
    coef, _ = mscn(img, window, "zeros", c=1 / 255)
    alpha, _, sl, sr = _pkg_fit(*_flat(coef, mask))
    feats = [alpha, (sl + sr) / 2]
    a, m = coef, mask
    pairs = (
        (a[..., :, :-1], a[..., :, 1:], None if m is None else m[..., :, :-1] & m[..., :, 1:]),
        (a[..., :-1, :], a[..., 1:, :], None if m is None else m[..., :-1, :] & m[..., 1:, :]),
        (a[..., :-1, :-1], a[..., 1:, 1:], None if m is None else m[..., :-1, :-1] & m[..., 1:, 1:]),
        (a[..., 1:, :-1], a[..., :-1, 1:], None if m is None else m[..., 1:, :-1] & m[..., :-1, 1:]),
    )
    for p, q, pm in pairs:
        feats += list(_pkg_fit(*_flat(p * q, pm)))
    return feats


class BRISQUE(torch.nn.Module):
    """Blind/Referenceless Image Spatial Quality Evaluator (lower = better, about 0-100).

    :param model: ``"brisque-live"`` (default, the LIVE MATLAB release) or ``"brisque-pkg"`` (``brisque`` 0.2.0).

    ``forward(x, mask=None)`` takes ``(B,C,H,W)`` in ``[0,1]`` (C = 1 or 3) and returns ``(B,)`` float64.
    """

    def __init__(self, model: str = "brisque-live") -> None:
        super().__init__()
        params = _model(model)
        self.model = model
        self.gamma = float(params["gamma"])
        self.rho = float(params["rho"])
        self.register_buffer("sv", torch.from_numpy(params["sv"]))
        self.register_buffer("coef", torch.from_numpy(params["coef"]))
        self.register_buffer("lo", torch.from_numpy(params["lo"]))
        self.register_buffer("hi", torch.from_numpy(params["hi"]))
        self.register_buffer("window", _gaussian_window())

    def features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The 36 unscaled features ``(B, 36)`` (scale 1 then scale 2)."""
        h, w = x.shape[-2:]
        if min(h, w) < 16:
            raise EIDError(f"BRISQUE needs images of at least 16x16 pixels, got {h}x{w}; use larger images")
        if mask is not None:
            mask = -F.max_pool2d(-mask.to(torch.float64), 7, stride=1, padding=3) > 0.5
        window = self.window.to(x.device)
        if self.model == "brisque-live":
            img = torch.cat([self._grey(to_levels(band), MATLAB_GREY, rounded=True) for band in row_bands(x)], -2)
            small, m2 = imresize(img), None if mask is None else imresize(mask.to(img)) >= 0.5
            feats = _live_scale(img, mask, window) + _live_scale(small, m2, window)
        else:
            img = torch.cat([self._grey(to_levels(band), REC709_GREY, rounded=False) for band in row_bands(x)], -2) / 255
            small, m2 = _cv2_half(img), None if mask is None else _cv2_half(mask.to(img)) >= 0.5
            feats = _pkg_scale(img, mask, window) + _pkg_scale(small, m2, window)
        return torch.stack(feats, -1)

    @staticmethod
    def _grey(levels: torch.Tensor, weights: tuple[float, float, float], rounded: bool) -> torch.Tensor:
        if levels.shape[1] == 1:
            return levels
        w = torch.tensor(weights, dtype=levels.dtype, device=levels.device).view(1, 3, 1, 1)
        grey = (levels * w).sum(1, keepdim=True)
        return torch.floor(grey + 0.5) if rounded else grey

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        f = self.features(x, mask)
        scaled = -1 + 2 * (f - self.lo.to(f)) / (self.hi.to(f) - self.lo.to(f))
        dist = torch.cdist(scaled, self.sv.to(f)) ** 2
        return torch.exp(-self.gamma * dist) @ self.coef.to(f) - self.rho


@lru_cache(maxsize=2)
def _brisque(model: str) -> BRISQUE:
    return BRISQUE(model)


def brisque(x: torch.Tensor, mask: torch.Tensor | None = None, model: str = "brisque-live") -> torch.Tensor:
    """BRISQUE of a ``(B,C,H,W)`` batch or a ``(C,H,W)`` image in ``[0,1]`` -> ``(B,)`` (or a scalar tensor)."""
    single = x.ndim == 3
    out = _brisque(model)(x[None] if single else x, mask[None] if single and mask is not None else mask)
    return out[0] if single else out


for _name, _desc in (("brisque", "BRISQUE, LIVE MATLAB release model (= brisque-live)"),
                     ("brisque-live", "BRISQUE, LIVE MATLAB release model"),
                     ("brisque-pkg", "BRISQUE, model and features of the brisque 0.2.0 PyPI package")):
    register(
        MetricSpec(
            name=_name,
            fn=lambda pred, ref=None, mask=None, _m=("brisque-live" if _name == "brisque" else _name): brisque(pred, mask, _m),
            needs_reference=False,
            lower_better=True,
            supports_mask=True,
            description=_desc,
        )
    )
