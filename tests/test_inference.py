"""Inference engine: padding, tiling, test-time averaging, the any-kind runner and the folder driver."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from rich.console import Console
from torch import nn

from eid.data.io import read_image
from eid.errors import EIDError
from eid.inference import (
    Dehazer,
    GroupAverage,
    Method,
    build_method,
    crop_to,
    dehaze_paths,
    exact_tta_group,
    pad_to_multiple,
    tile_windows,
    tiled_apply,
)


def pointwise(y: torch.Tensor) -> torch.Tensor:
    """A pixelwise map: tiling and group averaging must leave it unchanged."""
    return (0.2 + 0.7 * y**2).clamp(0, 1)


def small_cnn(channels: int = 3) -> nn.Module:
    """Two 3x3 convs (receptive-field radius 2), zero padding, fixed random weights."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, channels, 3, padding=1),
        nn.Sigmoid(),
    )
    return net.eval()


class SymmetricConv(nn.Module):
    """A conv with a D4-symmetric kernel and zero padding: exactly rot90/flip equivariant."""

    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
        self.register_buffer("kernel", k.expand(1, 1, 3, 3).clone())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        c = y.shape[1]
        return torch.sigmoid(
            4 * nn.functional.conv2d(y, self.kernel.expand(c, 1, 3, 3), padding=1, groups=c) - 2
        )


# -- padding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 50), (16, 16), (3, 5), (1, 40)])
@pytest.mark.parametrize("multiple", [1, 4, 16])
def test_pad_then_crop_is_identity(size, multiple, rng):
    x = torch.rand(2, 3, *size, generator=rng)
    padded, original = pad_to_multiple(x, multiple)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert torch.equal(crop_to(padded, original), x)


def test_pad_reflects_when_possible(rng):
    x = torch.rand(1, 1, 37, 50, generator=rng)
    padded, _ = pad_to_multiple(x, 16)
    assert torch.equal(padded[..., 37, :50], x[..., 35, :])  # reflect: row 37 mirrors row 35


# -- tiling ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length,tile,overlap,multiple",
    [(100, 48, 16, 4), (256, 64, 32, 16), (300, 64, 0, 1), (50, 64, 16, 1)],
)
def test_tile_windows_partition_of_unity(length, tile, overlap, multiple):
    total = torch.zeros(length, dtype=torch.float64)
    for start, w in tile_windows(length, tile, overlap, multiple):
        assert start % multiple == 0 or start == length - min(tile, length)
        total[start : start + len(w)] += w
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


def test_tiled_pointwise_equals_untiled(rng):
    x = torch.rand(1, 3, 300, 257, generator=rng)
    out = tiled_apply(pointwise, x, tile=64, overlap=16, batch_size=3)
    torch.testing.assert_close(out, pointwise(x), rtol=0, atol=2e-7)


def test_tiled_cnn_matches_untiled(rng):
    """Receptive-field radius 2 < discarded margin overlap/4 = 4: agreement to float rounding."""
    net = small_cnn()
    x = torch.rand(1, 3, 150, 203, generator=rng)
    tiled = Dehazer.from_module(net, device="cpu", tile=48, overlap=16, batch_size=4).run(x)
    whole = Dehazer.from_module(net, device="cpu", tile=None).run(x)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


def hazy_scene(rng: torch.Generator, height: int, width: int) -> torch.Tensor:
    """Texture under a haze veil that thickens from left to right: tiles differ in mean and contrast."""
    texture = torch.nn.functional.avg_pool2d(
        torch.rand(1, 3, height, width, generator=rng), 5, 1, 2
    )
    veil = torch.linspace(0.0, 0.8, width).expand(1, 1, height, width)
    return texture * (1 - veil) + 0.9 * veil


def group_norm_dehazer() -> nn.Module:
    from eid.models import DehazerConfig, DehazerNet

    torch.manual_seed(0)
    return DehazerNet(DehazerConfig(channels=3, scales=2, width=8, norm="group")).eval()


def test_tiles_use_whole_image_norm_statistics(rng):
    """Image larger than the reference (2 tiles): per-tile group-norm statistics change the result, the
    down-scaled whole image's bring the tiles close to it (the rest: down-scaling and tile borders, as this
    random-weight UNet's receptive field exceeds the overlap)."""
    net = group_norm_dehazer()
    x = hazy_scene(rng, 160, 192)
    whole = Dehazer.from_module(net, device="cpu", tile=None).run(x)
    errors = {}
    for mode in ("tile", "global"):
        tiled = Dehazer.from_module(
            net, device="cpu", tile=64, overlap=32, batch_size=2, tile_norm=mode
        ).run(x)
        errors[mode] = (tiled - whole).abs().mean().item()
    assert errors["tile"] > 5e-3
    assert errors["global"] < 0.5 * errors["tile"]


class CountingNet(nn.Module):
    """Wraps a network and records the spatial size of every call."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape[-2:]))
        return self.net(x)


def test_image_within_the_reference_budget_runs_once(rng):
    """With norms to match, an image of at most 2 tiles gets one whole-image forward and no tile passes."""
    net = CountingNet(group_norm_dehazer())
    x = hazy_scene(rng, 96, 128)
    out = Dehazer.from_module(net, device="cpu", tile=64, overlap=16).run(x)
    assert net.calls == [(96, 128)]
    torch.testing.assert_close(
        out, Dehazer.from_module(net.net, device="cpu", tile=None).run(x), rtol=0, atol=0
    )


def small_group_norm_cnn() -> nn.Module:
    """Conv3x3 -> GroupNorm -> ReLU -> Conv1x1: receptive-field radius 1, whole-input statistics."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GroupNorm(2, 8),
        nn.ReLU(),
        nn.Conv2d(8, 3, 1),
        nn.Sigmoid(),
    )
    return net.eval()


@pytest.mark.parametrize("tta", [False, "rot90*flip"])
def test_global_norm_statistics_make_tiling_exact(tta, rng):
    """Small receptive field, statistics recorded on the full-resolution image: the tiles reproduce the
    whole image to rounding, also under test-time averaging (8 norm calls per forward, each matched to
    its group element); per-tile statistics do not."""
    from eid.models.global_norm import GlobalNormStatistics

    net = small_group_norm_cnn()
    fn = GroupAverage(net, tta) if tta else net
    x = hazy_scene(rng, 128, 128)
    stats = GlobalNormStatistics([net])
    with torch.no_grad():
        with stats.recording():
            whole = fn(x)
        with stats.applying():
            tiled = tiled_apply(fn, x, tile=48, overlap=16, batch_size=2)
        per_tile = tiled_apply(fn, x, tile=48, overlap=16, batch_size=2)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    assert (per_tile - whole).abs().max() > 1e-2


def test_reference_image_fits_the_budget(rng):
    from eid.inference.norm_tiling import reference_image

    x = torch.rand(1, 3, 300, 500, generator=rng)
    assert reference_image(x, 512, 16) is x
    small = reference_image(x, 200, 16)
    assert small.shape[-2:] == (
        112,
        192,
    )  # 300 x 500 scaled by 0.4, rounded down to multiples of 16
    assert abs(small.mean().item() - x.mean().item()) < 1e-3


def test_image_normalising_layers_skip_pointwise_norms():
    from eid.models.global_norm import image_normalising_layers

    gn, inorm, tracked, bn = (
        nn.GroupNorm(2, 4),
        nn.InstanceNorm2d(4),
        nn.InstanceNorm2d(4, track_running_stats=True),
        nn.BatchNorm2d(4),
    )
    net = nn.Sequential(gn, inorm, tracked, bn).eval()
    assert image_normalising_layers([net]) == [gn, inorm]
    assert image_normalising_layers([net.train()]) == [gn, inorm, tracked]


def test_unknown_tile_norm_is_refused():
    with pytest.raises(EIDError, match="tile norm"):
        Dehazer.from_module(pointwise, device="cpu", tile_norm="local")


def test_tiling_respects_multiple_and_pads(rng):
    calls = []

    def record(y: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(y.shape[-2:]))
        return y

    x = torch.rand(1, 1, 70, 45, generator=rng)
    out = Dehazer.from_module(Method(record, multiple=16), device="cpu", tile=32, overlap=8).run(x)
    assert torch.allclose(out, x, atol=1e-6)
    assert calls and all(h % 16 == 0 and w % 16 == 0 for h, w in calls)


def test_invalid_tiling_is_refused():
    with pytest.raises(EIDError, match="invalid tiling"):
        Dehazer.from_module(pointwise, device="cpu", tile=32, overlap=40)


# -- test-time averaging ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 24, 24), (1, 3, 20, 33)])
def test_tta_of_equivariant_function_is_the_function(shape, rng):
    x = torch.rand(*shape, generator=rng)
    avg = GroupAverage(pointwise, "rot90*flip")
    assert avg.size == 8
    torch.testing.assert_close(avg(x), pointwise(x), rtol=0, atol=1e-6)


def test_tta_of_symmetric_conv_is_exact(rng):
    f = SymmetricConv()
    x = torch.rand(2, 3, 24, 24, generator=rng)
    torch.testing.assert_close(GroupAverage(f, "rot90*flip")(x), f(x), rtol=0, atol=1e-6)


def test_tta_output_is_equivariant(rng):
    """The Reynolds average of a non-equivariant net commutes with every group element."""
    avg = GroupAverage(small_cnn(), "rot90*flip")
    x = torch.rand(1, 3, 20, 20, generator=rng)
    with torch.no_grad():
        ref = avg(x)
        for k in range(4):
            for flip in (False, True):

                def t(z: torch.Tensor, k: int = k, flip: bool = flip) -> torch.Tensor:
                    return torch.rot90(z.flip(-1) if flip else z, k, dims=(-2, -1))

                torch.testing.assert_close(avg(t(x)), t(ref), rtol=0, atol=1e-5)


def test_runner_tta_uses_the_exact_part_of_the_training_group():
    assert exact_tta_group("microscopy") == "rot90*flip"
    assert exact_tta_group("rotate") == "rot90"
    runner = Dehazer.from_module(Method(pointwise, group="hflip*shift"), device="cpu", tta=True)
    assert runner.tta_group == "hflip"


# -- the any-kind runner ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda g: np.random.default_rng(0).integers(0, 256, (37, 50), dtype=np.uint8),
        lambda g: np.random.default_rng(0).integers(0, 65536, (37, 50, 3), dtype=np.uint16),
        lambda g: np.random.default_rng(0).random((2, 37, 50, 4)).astype(np.float32),
        lambda g: torch.rand(37, 50, generator=g),
        lambda g: torch.rand(3, 37, 50, generator=g, dtype=torch.float64),
        lambda g: torch.randint(0, 256, (2, 2, 37, 50), generator=g, dtype=torch.uint8),
    ],
    ids=[
        "np-HW-u8",
        "np-HWC-u16",
        "np-BHWC-f32-rgba",
        "t-HW-f32",
        "t-CHW-f64",
        "t-BCHW-u8-grey-alpha",
    ],
)
def test_same_kind_shape_dtype_back(make, rng):
    image = make(rng)
    out = Dehazer.from_module(small_cnn(), device="cpu", tile=32, overlap=8)(image)
    assert (
        type(out) is type(image)
        and tuple(out.shape) == tuple(image.shape)
        and out.dtype == image.dtype
    )


def test_alpha_passes_through_untouched():
    rgba = np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    out = Dehazer.from_module(lambda y: 1 - y, device="cpu")(rgba)
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert np.array_equal(out[..., :3], 255 - rgba[..., :3])


def test_integer_round_trip_is_exact():
    img = np.random.default_rng(2).integers(0, 65536, (37, 50), dtype=np.uint16)
    assert np.array_equal(Dehazer.from_module(lambda y: y, device="cpu")(img), img)


def test_grey_input_with_rgb_model_is_replicated_and_averaged(rng):
    weights = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    runner = Dehazer.from_module(Method(lambda y: y * weights, channels=3), device="cpu")
    x = torch.rand(1, 1, 17, 19, generator=rng)
    torch.testing.assert_close(runner.run(x), x * 0.5)


def test_rgb_input_with_grey_model_is_processed_per_channel(rng):
    def grey_only(y: torch.Tensor) -> torch.Tensor:
        assert y.shape[1] == 1
        return pointwise(y)

    x = torch.rand(2, 3, 17, 19, generator=rng)
    torch.testing.assert_close(
        Dehazer.from_module(Method(grey_only, channels=1), device="cpu").run(x), pointwise(x)
    )


def test_batching_equals_one_by_one(rng):
    x = torch.rand(5, 3, 21, 22, generator=rng)
    net = small_cnn()
    batched = Dehazer.from_module(net, device="cpu", batch_size=3).run(x)
    single = torch.cat([Dehazer.from_module(net, device="cpu").run(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)


def test_mixed_precision_is_gpu_only():
    with pytest.raises(EIDError, match="needs a CUDA device"):
        Dehazer.from_module(pointwise, device="cpu", precision="fp16")


def test_output_is_an_ordinary_tensor(rng):
    out = Dehazer.from_module(pointwise, device="cpu").run(torch.rand(1, 3, 8, 8, generator=rng))
    out.add_(1.0)  # an inference-mode tensor would refuse this


def test_build_method_errors():
    with pytest.raises(EIDError, match="use one of"):
        build_method("nope", device="cpu")
    with pytest.raises(EIDError, match="--model"):
        build_method("eid", device="cpu")
    with pytest.raises(EIDError, match="--operator"):
        build_method("cyclegan", device="cpu")


def test_dcp_method_is_not_tiled():
    runner = Dehazer(build_method("dcp", device="cpu"), device="cpu", tile=32, overlap=8)
    assert runner.plan.tile is None


# -- the folder driver -----------------------------------------------------------------------------


@pytest.fixture
def image_tree(tmp_path):
    """in/a.png (RGB 8-bit 37x50), in/sub/b.tif (grey 16-bit 37x50), in/c.png (same size as a), in/bad.png."""
    gen = np.random.default_rng(0)
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(gen.integers(0, 256, (37, 50, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(gen.integers(0, 256, (37, 50, 3), dtype=np.uint8)).save(src / "c.png")
    tifffile.imwrite(src / "sub" / "b.tif", gen.integers(0, 65536, (37, 50), dtype=np.uint16))
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return src


def test_integer_images_are_read_on_the_scale_the_model_was_trained_on(tmp_path):
    half = Method(lambda y: torch.full_like(y, 0.5), white=4095.0)  # e.g. trained on 12-bit data
    twelve_bit = np.full((8, 8), 4000, np.uint16)
    assert int(Dehazer(half, device="cpu")(twelve_bit).max()) == 2048  # 0.5 x 4095, not 0.5 x 65535
    assert int(Dehazer(half, device="cpu", white="dtype")(twelve_bit).max()) == 32768
    assert int(Dehazer(half, device="cpu", white="max")(twelve_bit).max()) == 2000
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "c.tif", twelve_bit)
    assert (
        dehaze_paths(
            [tmp_path / "in"],
            tmp_path / "out",
            Dehazer(half, device="cpu"),
            console=Console(file=io.StringIO()),
        )
        == 0
    )
    assert tifffile.imread(tmp_path / "out" / "c.tif").max() == 2048
    with pytest.raises(EIDError, match="white='12bit' is not valid"):
        Dehazer(half, device="cpu", white="12bit")


def test_a_stack_passed_as_one_array_gets_the_layout_to_use():
    runner = Dehazer(Method(lambda y: 1 - y), device="cpu")
    stack = np.zeros((5, 32, 32), np.uint16)
    with pytest.raises(
        EIDError,
        match=r"shape \(5, 32, 32\) read as HWC/BHWC has 32 channels.*pass array\[\.\.\., None\]",
    ):
        runner(stack)
    assert int(runner(stack[..., None]).min()) == 65535
    with pytest.raises(EIDError, match=r"read as CHW/BCHW has 5 channels.*pass tensor\[:, None\]"):
        runner(torch.zeros(5, 32, 32))


def test_folder_keeps_size_format_and_mirrors_tree(image_tree, tmp_path):
    out = tmp_path / "out"
    log = Console(file=io.StringIO(), width=200)  # not a terminal: progress comes as plain lines
    failures = dehaze_paths(
        [image_tree], out, Dehazer.from_module(small_cnn(), device="cpu", batch_size=2), console=log
    )
    assert failures == 1
    lines = log.file.getvalue().splitlines()
    assert lines[0] == "dehazing 0/4 (0%) | a.png" and any(
        line.startswith("dehazing 4/4 (100%)") for line in lines
    )
    assert "━" not in log.file.getvalue()
    b, meta = read_image(out / "sub" / "b.tif")
    assert tuple(b.shape) == (1, 37, 50) and meta.dtype == "uint16" and meta.format == "TIFF"
    a, meta = read_image(out / "a.png")
    assert tuple(a.shape) == (3, 37, 50) and meta.dtype == "uint8"
    assert (out / "c.png").is_file() and not (out / "bad.png").exists()


def test_folder_refuses_output_equal_to_input(image_tree):
    with pytest.raises(EIDError, match="input folder"):
        dehaze_paths([image_tree], image_tree, Dehazer.from_module(pointwise, device="cpu"))
    assert sorted(p.name for p in image_tree.iterdir()) == ["a.png", "bad.png", "c.png", "sub"]


def test_folder_gives_colliding_outputs_distinct_names(image_tree, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes((image_tree / "a.png").read_bytes())
    dehaze_paths(
        [image_tree / "a.png", other / "a.png"],
        tmp_path / "out",
        Dehazer.from_module(pointwise, device="cpu"),
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-2.png", "a.png"]


def test_skip_existing_resumes(image_tree, tmp_path):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "a.png").write_bytes(b"sentinel")
    dehaze_paths(
        [image_tree / "a.png", image_tree / "c.png"],
        out,
        Dehazer.from_module(pointwise, device="cpu"),
        skip_existing=True,
    )
    assert (out / "a.png").read_bytes() == b"sentinel" and (out / "c.png").is_file()
