"""A video output's frame-to-frame change: the flicker measure, and the temporal smoothing that reduces it.

Both follow the frames in time order and let the *input* decide what counts as still: :class:`FlickerMeter`
(and :func:`flicker`) measures an output's change where the input is static, :class:`TemporalSmoother` averages
the output over time where the input is still. :func:`eid.inference.video.dehaze_video` runs both as it streams.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from eid.errors import EIDError

__all__ = ["FlickerMeter", "TemporalSmoother", "flicker"]


def _grey(x: Tensor) -> Tensor:
    """Channel mean, keeping a channel axis: ``(..., C, H, W) -> (..., 1, H, W)``."""
    return x.mean(dim=-3, keepdim=True)


class FlickerMeter:
    r"""Streaming flicker of output videos in the static regions of their input video.

    .. math::
        \mathrm{flicker} = \frac{\sum_t \sum_p M_t(p)\, \overline{|y_t(p) - y_{t-1}(p)|}}{\sum_t \sum_p M_t(p)},
        \qquad M_t = \big[\mathrm{maxpool}_{3\times 3}\,\overline{|x_t - x_{t-1}|} < \delta\big]

    where :math:`x` are input frames, :math:`y` output frames, the bar is the mean over colour
    channels and the 3x3 max-pool grows moving areas by a pixel so that their edges do not count as
    static. The static mask comes from the input, so a method's own flicker cannot hide itself. In
    ``[0, 1]`` units (multiply by 255 for 8-bit levels); ``nan`` when no pixel was static. Several
    outputs of the same input (``streams``: e.g. the input itself, the raw and the smoothed output)
    share one mask per frame, computed once.

    :param delta: largest input change (in ``[0,1]``) that still counts as static; 0.02 ~ 5 levels,
        above H.264 noise at crf 18.
    :param streams: names of the output streams, in the order :meth:`update` receives them.
    """

    def __init__(self, delta: float = 0.02, streams: tuple[str, ...] = ("output",)) -> None:
        self.delta, self.streams = delta, streams
        self.totals = dict.fromkeys(streams, 0.0)
        self.count = 0
        self._prev: tuple[Tensor, ...] | None = None

    def update(self, x: Tensor, *ys: Tensor) -> None:
        """Add input ``x`` and one output per stream, each ``(C,H,W)`` or ``(T,C,H,W)`` in time order."""
        if len(ys) != len(self.streams):
            raise ValueError(
                f"FlickerMeter expects {len(self.streams)} output(s) {self.streams}, got {len(ys)}"
            )
        frames = (x, *ys) if x.dim() == 4 else (x.unsqueeze(0), *(y.unsqueeze(0) for y in ys))
        is_input = [y is x for y in ys]  # the input's own flicker reuses its change map
        for now in zip(*frames, strict=True):
            if self._prev is not None:
                change = _grey((now[0] - self._prev[0]).abs())
                static = F.max_pool2d(change.unsqueeze(0), 3, stride=1, padding=1)[0] < self.delta
                self.count += int(static.sum())
                for name, same, y, py in zip(
                    self.streams, is_input, now[1:], self._prev[1:], strict=True
                ):
                    diff = change if same else _grey((y - py).abs())
                    self.totals[name] += float((diff * static).sum())
            self._prev = now

    @property
    def values(self) -> dict[str, float]:
        """Flicker of each stream (``nan`` when no pixel was static)."""
        return {
            name: total / self.count if self.count else float("nan")
            for name, total in self.totals.items()
        }

    @property
    def value(self) -> float:
        """Flicker of the first stream."""
        return self.values[self.streams[0]]


def flicker(
    frames_in: Iterable[Tensor] | Tensor, frames_out: Iterable[Tensor] | Tensor, delta: float = 0.02
) -> float:
    """Mean absolute frame-to-frame change of ``frames_out`` where ``frames_in`` is static (:class:`FlickerMeter`).

    >>> x = torch.zeros(4, 3, 8, 8)                      # a static input scene
    >>> y = torch.tensor([0.0, 0.1, 0.0, 0.1]).view(4, 1, 1, 1).expand(4, 3, 8, 8)
    >>> round(flicker(x, y), 6)                          # output flickers by 0.1 every frame
    0.1
    """
    meter = FlickerMeter(delta)
    for x, y in zip(frames_in, frames_out, strict=True):
        meter.update(x, y)
    return meter.value


class TemporalSmoother:
    r"""Motion-aware exponential moving average of output frames.

    .. math::
        w_t = s \cdot \exp\!\big(-\overline{|x_t - \bar x_{t-1}|} / \tau\big), \quad
        \bar y_t = w_t \odot \bar y_{t-1} + (1 - w_t) \odot y_t, \quad
        \bar x_t = w_t \odot \bar x_{t-1} + (1 - w_t) \odot x_t

    per pixel, with :math:`x` the input frames, :math:`y` the dehazed frames and :math:`\bar y` the
    smoothed output (:math:`\bar y_0 = y_0`). Where the scene is still, :math:`w_t \approx s` and
    the output is averaged over about :math:`(1+s)/(1-s)` frames, which removes frame-to-frame
    flicker of the dehazer; where the scene moves, :math:`w_t \to 0` and the output follows the
    current frame, so motion is not smeared. The weight is driven by the *input* (compared with its
    own running average :math:`\bar x`, so slow drifts are caught too), not by the output: an output
    difference cannot tell the dehazer's flicker (to be removed) from motion (to be kept).

    :param strength: :math:`s \in [0, 1)`; 0 disables smoothing.
    :param tau: motion scale in ``[0,1]`` units; 0.02 ~ 5 grey levels.
    """

    def __init__(self, strength: float, tau: float = 0.02) -> None:
        if not 0.0 <= strength < 1.0:
            raise EIDError(f"temporal smoothing must be in [0, 1), got {strength}; try 0.5-0.8")
        if tau <= 0:
            raise EIDError(f"smoothing tau must be positive, got {tau}; try 0.02")
        self.strength, self.tau = strength, tau
        self._state: tuple[Tensor, Tensor] | None = None

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Smooth output ``y`` ``(C,H,W)`` of input frame ``x`` ``(C',H,W)``; call in time order."""
        if self._state is None or self.strength == 0:
            self._state = (x, y)
            return y
        xs, ys = self._state
        w = self.strength * torch.exp(-_grey((x - xs).abs()) / self.tau)
        self._state = (torch.lerp(x, xs, w), torch.lerp(y, ys, w))
        return self._state[1]
