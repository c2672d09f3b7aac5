"""BRISQUE (Mittal, Moorthy & Bovik, "No-Reference Image Quality Assessment in the Spatial Domain", IEEE TIP 2012).

Two models, chosen by name, both evaluated in double without libsvm (the MSCN maps and statistics with
numpy/scipy on the CPU, whatever the input's device, so that flat regions round as the reference does):

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

from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from eid.errors import EIDError
from eid.metrics.brisque_features import (
    MATLAB_GREY,
    REC709_GREY,
    _cv2_half,
    _gaussian_window,
    _live_scale,
    _pkg_scale,
)
from eid.metrics.nss import (
    imresize,
    load_params,
    row_bands,
    to_levels,
)
from eid.metrics.registry import MetricSpec, register

MODELS = ("brisque-live", "brisque-pkg")


def _read_libsvm(text: str) -> dict[str, np.ndarray]:
    """Dense ``sv`` (N,36), ``coef`` (N,), ``gamma``, ``rho`` of a libsvm epsilon-SVR RBF text model."""
    head, body = text.split("\nSV\n", 1)
    meta = dict(line.split(" ", 1) for line in head.strip().splitlines())
    if meta.get("svm_type") != "epsilon_svr" or meta.get("kernel_type") != "rbf":
        raise EIDError(
            "the vendored BRISQUE model is not an epsilon-SVR with RBF kernel; reinstall eid"
        )
    coef, sv = [], []
    for line in body.strip().splitlines():
        parts = line.split()
        coef.append(float(parts[0]))
        row = np.zeros(36)
        for item in parts[1:]:
            i, v = item.split(":")
            row[int(i) - 1] = float(v)
        sv.append(row)
    return {
        "sv": np.array(sv),
        "coef": np.array(coef),
        "gamma": np.float64(meta["gamma"]),
        "rho": np.float64(meta["rho"]),
    }


@lru_cache(maxsize=2)
def _model(name: str) -> dict[str, np.ndarray]:
    """SVR and feature scaling of model ``name``: ``lo``/``hi`` (feature range mapped to -1..1)."""
    if name == "brisque-live":
        folder = resources.files("eid.metrics._params")
        svr = _read_libsvm(
            folder.joinpath("brisque_live_allmodel").read_text().replace("\r\n", "\n")
        )
        lines = folder.joinpath("brisque_live_allrange").read_text().split()
        rng = np.array(lines[3:], dtype=np.float64).reshape(-1, 3)
        return {**svr, "lo": rng[:, 1], "hi": rng[:, 2]}
    if name == "brisque-pkg":
        svr = load_params("brisque_pkg_svm_model.npz")
        norm = load_params("brisque_pkg_normalize.npz")
        return {**svr, "lo": norm["min_"], "hi": norm["max_"]}
    raise EIDError(f"unknown BRISQUE model {name!r}; choose from: {', '.join(MODELS)}")


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
            raise EIDError(
                f"BRISQUE needs images of at least 16x16 pixels, got {h}x{w}; use larger images"
            )
        if mask is not None:
            mask = -F.max_pool2d(-mask.to(torch.float64), 7, stride=1, padding=3) > 0.5
        window = self.window.to(x.device)
        if self.model == "brisque-live":
            img = self._grey(x, MATLAB_GREY, rounded=True)
            small, m2 = imresize(img), None if mask is None else imresize(mask.to(img)) >= 0.5
            feats = _live_scale(img, mask, window) + _live_scale(small, m2, window)
        else:
            img = self._grey(x, REC709_GREY, rounded=False) / 255
            small, m2 = _cv2_half(img), None if mask is None else _cv2_half(mask.to(img)) >= 0.5
            feats = _pkg_scale(img, mask, window) + _pkg_scale(small, m2, window)
        return torch.stack(feats, -1).to(x.device)

    @staticmethod
    def _grey(x: torch.Tensor, weights: tuple[float, float, float], rounded: bool) -> torch.Tensor:
        """Grey levels ``(B,1,H,W)`` (float64) of the 8-bit levels of ``x``: ``sum_c w_c L_c`` (products, then
        sums in channel order), rounded half up when ``rounded``; computed in row bands of :func:`row_bands`."""
        grey = torch.empty(x.shape[0], 1, *x.shape[-2:], dtype=torch.float64, device=x.device)
        r0 = 0
        for band in row_bands(x):
            levels, out = to_levels(band), grey[..., r0 : r0 + band.shape[-2], :]
            r0 += band.shape[-2]
            if levels.shape[1] == 1:
                out.copy_(levels)
                continue
            torch.mul(levels[:, :1], weights[0], out=out)
            for c in (1, 2):
                out += levels[:, c : c + 1] * weights[c]
            if rounded:
                out.add_(0.5).floor_()
        return grey

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        f = self.features(x, mask)
        scaled = -1 + 2 * (f - self.lo.to(f)) / (self.hi.to(f) - self.lo.to(f))
        dist = torch.cdist(scaled, self.sv.to(f)) ** 2
        return torch.exp(-self.gamma * dist) @ self.coef.to(f) - self.rho


@lru_cache(maxsize=2)
def _brisque(model: str) -> BRISQUE:
    return BRISQUE(model)


def brisque(
    x: torch.Tensor, mask: torch.Tensor | None = None, model: str = "brisque-live"
) -> torch.Tensor:
    """BRISQUE of a ``(B,C,H,W)`` batch or a ``(C,H,W)`` image in ``[0,1]`` -> ``(B,)`` (or a scalar tensor)."""
    single = x.ndim == 3
    out = _brisque(model)(
        x[None] if single else x, mask[None] if single and mask is not None else mask
    )
    return out[0] if single else out


for _name, _desc in (
    ("brisque", "BRISQUE, LIVE MATLAB release model (= brisque-live)"),
    ("brisque-live", "BRISQUE, LIVE MATLAB release model"),
    ("brisque-pkg", "BRISQUE, model and features of the brisque 0.2.0 PyPI package"),
):
    register(
        MetricSpec(
            name=_name,
            fn=lambda pred, ref=None, mask=None, _m=("brisque-live" if _name == "brisque" else _name): (
                brisque(pred, mask, _m)
            ),
            needs_reference=False,
            lower_better=True,
            supports_mask=True,
            description=_desc,
        )
    )
