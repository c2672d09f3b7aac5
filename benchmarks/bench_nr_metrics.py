"""Time eid's NIQE and BRISQUE against straightforward per-patch numpy ports of the reference code.

The reference implementations (BasicSR 1.4.2 ``calculate_niqe``, the LIVE MATLAB ``brisque_feature.m`` +
libsvm) are not installed here, so this script carries faithful loop-by-loop numpy ports of them
(``ref_niqe``: BasicSR's per-block loop with a full 9801-point grid ``argmin``; ``ref_brisque``: the MATLAB
feature code with ``circshift`` and the SVR summed per support vector). Both sides get the same 8-bit inputs.

Run: ``.venv/bin/python benchmarks/bench_nr_metrics.py [--repeats 3] [--big 4000x3000]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy import ndimage, signal
from scipy.special import gamma

from eid.metrics.brisque import MATLAB_GREY, _model, brisque
from eid.metrics.niqe import niqe
from eid.metrics.nss import _resize_matrix, load_params

GAM = np.arange(0.2, 10.001, 0.001)


def _aggd(x: np.ndarray) -> tuple[float, float, float]:
    r_gam = gamma(2 / GAM) ** 2 / (gamma(1 / GAM) * gamma(3 / GAM))
    left, right = np.sqrt(np.mean(x[x < 0] ** 2)), np.sqrt(np.mean(x[x > 0] ** 2))
    g = left / right
    rhat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
    rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    return GAM[np.argmin((r_gam - rnorm) ** 2)], left, right


def _resize_half(img: np.ndarray) -> np.ndarray:
    return _resize_matrix(img.shape[0], 0.5) @ img @ _resize_matrix(img.shape[1], 0.5).T


def ref_niqe(y: np.ndarray) -> float:
    """BasicSR ``niqe()`` on a rounded Y image (float32 as BasicSR), block by block."""
    p = load_params("niqe_pris_params.npz")
    h, w = y.shape
    nh, nw = h // 96, w // 96
    img = y[: nh * 96, : nw * 96].astype(np.float32)
    dist = []
    for scale in (1, 2):
        mu = ndimage.convolve(img, p["gaussian_window"], mode="nearest")
        sigma = np.sqrt(
            np.abs(
                ndimage.convolve(np.square(img), p["gaussian_window"], mode="nearest")
                - np.square(mu)
            )
        )
        norm = (img - mu) / (sigma + 1)
        feat = []
        for j in range(nw):
            for i in range(nh):
                blk = norm[
                    i * 96 // scale : (i + 1) * 96 // scale, j * 96 // scale : (j + 1) * 96 // scale
                ]
                a, bl, br = _aggd(blk)
                c = np.sqrt(gamma(1 / a) / gamma(3 / a))
                f = [a, (bl + br) * c / 2]
                for s in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    a, bl, br = _aggd(blk * np.roll(blk, s, axis=(0, 1)))
                    c = np.sqrt(gamma(1 / a) / gamma(3 / a))
                    f += [a, (br - bl) * c * gamma(2 / a) / gamma(1 / a), bl * c, br * c]
                feat.append(f)
        dist.append(np.array(feat))
        if scale == 1:
            img = (_resize_half(img.astype(np.float64) / 255) * 255).astype(np.float32)
    d = np.concatenate(dist, 1)
    mu_d = np.nanmean(d, 0)
    cov_d = np.cov(d[~np.isnan(d).any(1)], rowvar=False)
    diff = p["mu_pris_param"] - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((p["cov_pris_param"] + cov_d) / 2) @ diff.T).item())


def ref_brisque(grey: np.ndarray) -> float:
    """``brisque_feature.m`` + ``svm-scale``/``svm-predict`` on a MATLAB-rounded grey image."""
    r_ggd = gamma(1 / GAM) * gamma(3 / GAM) / gamma(2 / GAM) ** 2
    win = load_params("niqe_pris_params.npz")["gaussian_window"]
    img, feat = grey.astype(np.float64), []
    for _ in range(2):
        mu = signal.correlate2d(img, win, "same")
        sigma = np.sqrt(np.abs(signal.correlate2d(img * img, win, "same") - mu * mu))
        s = (img - mu) / (sigma + 1)
        v = s.ravel()
        feat += [
            GAM[np.argmin(np.abs(np.mean(v**2) / np.mean(np.abs(v)) ** 2 - r_ggd))],
            np.mean(v**2),
        ]
        for sh in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            a, left, right = _aggd((s * np.roll(s, sh, axis=(0, 1))).ravel())
            c = np.sqrt(gamma(1 / a)) / np.sqrt(gamma(3 / a))
            feat += [a, (right - left) * gamma(2 / a) / gamma(1 / a) * c, left**2, right**2]
        img = _resize_half(img)
    m = _model("brisque-live")
    x = -1 + 2 * (np.array(feat) - m["lo"]) / (m["hi"] - m["lo"])
    return float(
        sum(c * np.exp(-m["gamma"] * np.sum((x - sv) ** 2)) for c, sv in zip(m["coef"], m["sv"]))
        - m["rho"]
    )


def _inputs(rng: np.random.Generator, n: int, h: int, w: int) -> torch.Tensor:
    """Smooth random colour images (blurred noise plus gradients), quantised to 8 bits."""
    x = ndimage.gaussian_filter(rng.random((n, 3, h, w)), (0, 0, 2, 2))
    x = (x - x.min()) / (x.max() - x.min())
    x = 0.7 * x + 0.3 * np.linspace(0, 1, w)[None, None, None]
    return torch.from_numpy(np.round(x * 255) / 255).to(torch.float32)


def _time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    ap.add_argument(
        "--big", default="4000x3000", help="WxH of the large single image (12 MP by default)"
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    bw, bh = (int(v) for v in args.big.split("x"))
    cases = [
        ("64 x 256x256", _inputs(rng, 64, 256, 256)),
        (f"1 x {bw}x{bh}", _inputs(rng, 1, bh, bw)),
    ]
    print("| metric | input | eid (s) | reference port (s) | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    for label, x in cases:
        levels = np.round(x.numpy() * 255)
        y = np.stack(
            [
                np.round(
                    (
                        (lv[2] / 255 * 24.966 + lv[1] / 255 * 128.553 + lv[0] / 255 * 65.481 + 16)
                        / 255
                    ).astype(np.float32)
                    * np.float32(255)
                )
                for lv in levels.astype(np.float32)
            ]
        )
        grey = np.floor(np.tensordot(MATLAB_GREY, levels, axes=([0], [1])) + 0.5)
        for name, ours, ref in (
            ("NIQE", lambda x=x: niqe(x), lambda y=y: [ref_niqe(im) for im in y]),
            (
                "BRISQUE (LIVE)",
                lambda x=x: brisque(x),
                lambda grey=grey: [ref_brisque(im) for im in grey],
            ),
        ):
            t_ours, v_ours = _time(ours, args.repeats)
            t_ref, v_ref = _time(ref, 1 if x.shape[0] > 1 or bw * bh > 4e6 else args.repeats)
            diff = float(np.max(np.abs(v_ours.numpy() - np.array(v_ref))))
            print(
                f"| {name} | {label} | {t_ours:.2f} | {t_ref:.2f} | {t_ref / t_ours:.1f}x | {diff:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
