r"""3x3 convolution by Winograd's minimal filtering algorithm :math:`F(4 \times 4, 3 \times 3)`.

Each 4x4 output tile :math:`Y` of a 3x3 correlation of a 6x6 input tile :math:`d` with a kernel :math:`g`
is (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016)

.. math::

    Y = A^\top \Big[ \sum_{c} (G g_{k,c} G^\top) \odot (B^\top d_c B) \Big] A,

so a convolution becomes 36 independent matrix products ``(C_out x C_in) @ (C_in x tiles)`` between the
transformed kernels and the transformed input tiles: 36 multiplications per 16 outputs instead of 144,
4x fewer than direct convolution. The transforms are small fixed matrices: the input's and the output
gradient's are applied as stride-4 convolutions with their 36 basis filters (oneDNN reads the tensor once),
the others as one matrix product over all tiles. The backward pass is Winograd too: both gradients are
products in the transformed domain, brought back by the transposed transforms.

Why: on CPUs without AVX-512 oneDNN (torch's CPU convolution) only has direct convolution, and the
``paper`` ResNet generator spends most of its time in 3x3, 256-channel convolutions at 64x64.
``benchmarks/bench_operator_step.py --winograd-layers`` times this path against ``F.conv2d`` per layer
shape; :class:`WinogradConv2d` uses it only where that showed a gain (CPU, float32, no autocast, both
channel counts >= :attr:`WinogradConv2d.min_channels`) and is a plain ``nn.Conv2d`` everywhere else,
including on GPUs, whose libraries choose Winograd themselves. Both stages build their generators with
these layers (``paper`` generator forward + backward 1.2-1.5x faster at batch 1, 2 and 4, stage-2 step
1.1-1.2x faster; ``docs/benchmarks/operator.md``). Outputs agree with direct convolution to about 1e-5
relative (float32 rounding of the transforms).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["WinogradConv2d", "winograd_conv3x3"]

_BT = torch.tensor(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=torch.float64,
)
_G = torch.tensor(
    [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
     [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
    dtype=torch.float64,
)  # fmt: skip
_AT = torch.tensor(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    dtype=torch.float64,
)
# The transforms of a whole tile, row-major on both sides: V = B^T d B is _KB @ d, U = G g G^T is _KG @ g,
# Y = A^T M A is _KA @ M, for d, g, M, Y and the results flattened row by row.
_KB, _KG, _KA = torch.kron(_BT, _BT), torch.kron(_G, _G), torch.kron(_AT, _AT)


def _to_products(t: torch.Tensor, n: int) -> torch.Tensor:
    """``(N C, 36, th, tw) -> (36, C, N th tw)``, the products' layout; a view (no copy) when ``N = 1``."""
    return t.unflatten(0, (n, -1)).flatten(3).permute(2, 1, 0, 3).flatten(2)


def _input_transform(x: torch.Tensor) -> torch.Tensor:
    """``B^T d B`` of every overlapping 6x6 tile (stride 4): ``(N, C, 4th+2, 4tw+2) -> (36, C, N th tw)``.

    A convolution of each channel with the 36 basis filters of the transform, stride 4: oneDNN reads the
    input once (1.5-1.9x faster than tile copies and 6x6 matrix products, 256 channels at 64x64)."""
    n, c, h, w = x.shape
    return _to_products(
        F.conv2d(x.reshape(n * c, 1, h, w), _KB.to(x).view(36, 1, 6, 6), stride=4), n
    )


def _kernel_transform(weight: torch.Tensor) -> torch.Tensor:
    """``G g G^T`` of every 3x3 kernel: ``(K, C, 3, 3) -> (36, K, C)``."""
    k, c = weight.shape[:2]
    return (_KG.to(weight) @ weight.reshape(k * c, 9).T).reshape(36, k, c)


def _input_transform_adjoint(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Adjoint of :func:`_input_transform`: ``(36, C, N th tw) -> (N, C, 4th+2, 4tw+2)``.

    ``B V B^T`` of each tile's gradient ``V``, then overlap-add: a tile's first 4x4 values are its own, its
    last two rows and columns add onto the next tiles'."""
    n, c, h, w = shape
    th, tw = (h - 2) // 4, (w - 2) // 4
    tiles = (
        (grad.reshape(36, -1).T @ _KB.to(grad)).view(c, n, th, tw, 6, 6).permute(1, 0, 2, 4, 3, 5)
    )
    out = grad.new_zeros(n, c, th + 1, 4, tw + 1, 4)
    out[:, :, :th, :, :tw, :] = tiles[:, :, :, :4, :, :4]
    out[:, :, 1:, :2, :tw, :] += tiles[:, :, :, 4:, :, :4]
    out[:, :, :th, :, 1:, :2] += tiles[:, :, :, :4, :, 4:]
    out[:, :, 1:, :2, 1:, :2] += tiles[:, :, :, 4:, :, 4:]
    return out.view(n, c, 4 * th + 4, 4 * tw + 4)[:, :, :h, :w]


def _kernel_transform_adjoint(grad: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_kernel_transform`: ``(36, K, C) -> (K, C, 3, 3)``."""
    _, k, c = grad.shape
    return (_KG.to(grad).T @ grad.reshape(36, k * c)).T.reshape(k, c, 3, 3)


def _output_transform(m: torch.Tensor, out: torch.Tensor) -> None:
    """``A^T M A`` of every transformed tile, into ``out``: ``(36, K, N th tw) -> (N, K, 4th, 4tw)``."""
    n, k, h, w = out.shape
    y = (_KA.to(m) @ m.reshape(36, -1)).view(4, 4, k, n, h // 4, w // 4)
    out.view(n, k, h // 4, 4, w // 4, 4).copy_(y.permute(3, 2, 4, 0, 5, 1))


def _output_transform_adjoint(grad: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_output_transform`: ``(N, K, 4th, 4tw) -> (36, K, N th tw)``, as a stride-4
    convolution with the 36 filters ``A_i A_j^T`` (the transposed transform)."""
    n, k, h, w = grad.shape
    filters = _KA.to(grad).T.reshape(36, 1, 4, 4)
    return _to_products(F.conv2d(grad.reshape(n * k, 1, h, w), filters, stride=4), n)


class _WinogradConv(torch.autograd.Function):
    """The convolution as one autograd node that keeps what direct convolution keeps.

    Only ``x`` and ``w`` are saved, not their transforms (2.25x and 4x larger): the backward pass
    recomputes the one each gradient needs, which is cheap next to the product, and applies the
    transforms' adjoints (transposed matrices, overlap-add of the tiles) explicitly. The output is
    allocated before the transforms' temporaries, so that freeing those leaves fewer holes under
    long-lived activations in the heap. A ``paper`` stage-1 step then peaks 0.2-0.5 GiB above direct
    convolution (heap glibc keeps), against 2.9 GiB when autograd kept the transforms.
    """

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        out = x.new_empty(x.shape[0], weight.shape[0], x.shape[2] - 2, x.shape[3] - 2)
        _output_transform(torch.bmm(_kernel_transform(weight), _input_transform(x)), out)
        if bias is not None:
            out += bias.view(1, -1, 1, 1)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_m = _output_transform_adjoint(grad_out) if need_x or need_w else None
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_v = torch.bmm(_kernel_transform(weight).transpose(1, 2), grad_m)
            grad_x = _input_transform_adjoint(grad_v, x.shape)
        if need_w:
            grad_u = torch.bmm(grad_m, _input_transform(x).transpose(1, 2))
            grad_w = _kernel_transform_adjoint(grad_u)
        if need_b:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b


def winograd_conv3x3(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """3x3 cross-correlation, stride 1, zero ``padding`` (rows, columns):
    ``(N, C, H, W) -> (N, K, H + 2 ph - 2, W + 2 pw - 2)``.

    Same result as ``F.conv2d(x, weight, bias, padding=padding)`` up to float rounding. The input is
    zero-extended once, by the padding and to whole 4x4 output tiles, and the output cropped back.
    Differentiable once.
    """
    ph, pw = padding
    out_h, out_w = x.shape[-2] + 2 * ph - 2, x.shape[-1] + 2 * pw - 2
    th, tw = -(-out_h // 4), -(-out_w // 4)
    extend = (pw, 4 * tw - out_w + pw, ph, 4 * th - out_h + ph)
    if any(extend):
        x = F.pad(x, extend)
    y = _WinogradConv.apply(x, weight, bias)
    return y if (4 * th, 4 * tw) == (out_h, out_w) else y[:, :, :out_h, :out_w]


class WinogradConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, state dict and initialisation) that runs eligible 3x3 convolutions
    with :func:`winograd_conv3x3`.

    Eligible: kernel 3x3, stride 1, no dilation, one group, zero padding, both channel counts at least
    :attr:`min_channels`, a float32 CPU input and no autocast. Anything else goes through ``nn.Conv2d``.
    """

    #: Below 128 channels the transforms cost more than the 4x fewer multiplications save
    #: (``benchmarks/bench_operator_step.py --winograd-layers``).
    min_channels: ClassVar[int] = 128

    def _uses_winograd(self, x: torch.Tensor) -> bool:
        return (
            self.kernel_size == (3, 3)
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and min(self.in_channels, self.out_channels) >= self.min_channels
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
        )

    def _conv_forward(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if not self._uses_winograd(x):
            return super()._conv_forward(x, weight, bias)
        return winograd_conv3x3(x, weight, bias, self.padding)
