"""``eid report``: a report built from generated images and a fabricated run, checked by parsing its HTML, and
once in a real headless browser (console errors, a non-blank screenshot)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eid.report.html import best_rows, fmt, summary_table
from eid.report.page import build_report

SIZE = (40, 56)
METRICS = "psnr,ssim,fade"


class Page(HTMLParser):
    """Tags with their attributes, the text of each element with a ``data-*`` key, and all text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def links(self) -> list[str]:
        return [a[k] for _, a in self.tags for k in ("src", "href") if k in a]


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8)).save(path)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """hazy/clear/A complete; B lacks im0 and has im2 at another size; a stage-1 run with an untrained operator."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    for i in range(3):
        clear = rng.random((*SIZE, 3))
        _save(root / "clear" / f"im{i}.png", clear)
        _save(root / "hazy" / f"im{i}.png", 0.6 * clear + 0.4)
        _save(root / "A" / f"im{i}.png", 0.9 * clear + 0.05)
        if i:
            _save(root / "B" / f"im{i}.png", (0.8 * clear)[: SIZE[0] - 8 * (i == 2)])
    run = root / "run"
    _fabricate_run(run)
    return {name: root / name for name in ("hazy", "clear", "A", "B", "run")} | {"root": root}


def _fabricate_run(run: Path) -> None:
    from eid.models.scattering import ScatteringNet
    from eid.physics import ScatteringHaze

    torch.manual_seed(0)
    config = {
        "model": {"kind": "scattering", "channels": 3, "width": 4, "scales": 2, "t_min": 0.05}
    }
    ScatteringHaze(ScatteringNet(3, 4, 2), ScatteringNet(3, 4, 2), config=config).save(run)
    (run / "logs").mkdir(parents=True)
    lines = ["epoch,step,train/loss,train/mc,val/psnr"] + [
        f"{s // 5},{s},{1 / (s + 1)},{0.5 / (s + 1)},{'' if s % 5 else 20 + s / 10}"
        for s in range(20)
    ]
    (run / "logs" / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run / "config.yaml").write_text("lr: 0.0002\nname: <fabricated & run>\n")
    for epoch, value in ((1, 0.2), (2, 0.8)):
        _save(run / "samples" / f"epoch{epoch:04d}.png", np.full((10, 20, 3), value))


@pytest.fixture(scope="module")
def report(folders: dict[str, Path]) -> tuple[Path, Page, dict[str, dict[str, tuple[int, int]]]]:
    inputs = {k: _tree(v) for k, v in folders.items() if k != "root"}
    out = folders["root"] / "out"
    build_report(
        out,
        {"A": folders["A"], "B": folders["B"]},
        input=folders["hazy"],
        ref=folders["clear"],
        runs=[folders["run"]],
        metrics=METRICS,
    )
    return out, Page((out / "index.html").read_text(encoding="utf-8")), inputs


def test_every_referenced_file_exists_and_nothing_is_fetched(report) -> None:
    out, page, _ = report
    links = page.links()
    assert len(links) > 20
    for link in links:
        assert not re.match(r"[a-z]+:", link), link  # relative: no http(s), file: or data: URL
        assert (out / link).is_file(), link
    assert not re.search(r"https?://", (out / "index.html").read_text())


def test_nothing_is_written_in_the_inputs(report, folders) -> None:
    _, _, before = report
    assert {k: _tree(v) for k, v in folders.items() if k != "root"} == before


def test_columns_labels_and_missing_cells(report) -> None:
    _, page, _ = report
    rows = [a["data-column"] for t, a in page.tags if t == "td" and "data-column" in a]
    assert rows == ["input", "A", "B", "reference"] * 3
    missing = [a["data-column"] for t, a in page.tags if t == "td" and a.get("class") == "missing"]
    assert missing == ["B", "B"]  # im0 absent, im2 of another size
    alts = [a["alt"] for t, a in page.tags if t == "img" and "alt" in a]
    for label in (
        "input: im1",
        "A: im1",
        "B: im1",
        "reference: im1",
        "A: im0, FADE density",
        "input: im0, crop",
    ):
        assert label in alts
    assert "B: im0" not in alts and "B: im2" not in alts


def test_summary_equals_eid_evaluate(report, folders, eid_cli) -> None:
    out, _, _ = report
    html = (out / "index.html").read_text()
    for column, folder in (("input", "hazy"), ("A", "A")):
        assert eid_cli("evaluate", "--pred", folders[folder], "--ref", folders["clear"], "--metrics", METRICS,
                       "--json", out.parent / "e.json", "--quiet").code == 0  # fmt: skip
        means = json.loads((out.parent / "e.json").read_text())["metrics"]
        row = re.search(rf'<tr data-row="{column}">(.*?)</tr>', html).group(1)
        cells = dict(re.findall(r'<td data-metric="(\w+)"[^>]*>([^<]*)</td>', row))
        assert cells == {m: fmt(v) for m, v in means.items()}


def test_masked_scores_equal_eid_evaluate_with_mask_from(folders, eid_cli, tmp_path) -> None:
    """The field of view is found on the input image and applies to every method, as --mask-from does."""
    build_report(
        tmp_path / "out", {"A": folders["A"]}, input=folders["hazy"], metrics="fade", mask="circle"
    )
    html = (tmp_path / "out" / "index.html").read_text()
    assert eid_cli("evaluate", "--pred", folders["A"], "--metrics", "fade", "--mask", "circle", "--mask-from", folders["hazy"],
                   "--json", tmp_path / "e.json", "--quiet").code == 0  # fmt: skip
    means = json.loads((tmp_path / "e.json").read_text())["metrics"]
    row = re.search(r'<tr data-row="A">(.*?)</tr>', html).group(1)
    assert dict(re.findall(r'<td data-metric="([\w@]+)"[^>]*>([^<]*)</td>', row)) == {
        m: fmt(v) for m, v in means.items()
    }
    assert "fade@mask ↓" in html


def test_best_value_per_column(report) -> None:
    out, _, _ = report
    html = (out / "index.html").read_text()
    table = {row: body for row, body in re.findall(r'<tr data-row="(\w+)">(.*?)</tr>', html)}
    values = {
        row: {m: float(v) for m, v in re.findall(r'data-metric="(\w+)"[^>]*>([^<]*)<', body)}
        for row, body in table.items()
    }
    marked = {
        (row, m)
        for row, body in table.items()
        for m in re.findall(r'data-metric="(\w+)" class="best"', body)
    }
    expected = {(max(values, key=lambda r: values[r][m]), m) for m in ("psnr", "ssim")}
    expected.add((min(values, key=lambda r: values[r]["fade"]), "fade"))
    assert marked == expected and ("A", "psnr") in marked
    assert "↑" in html and "↓" in html  # PSNR higher, FADE lower is better
    means = {
        "x": {"fade": 1.0, "psnr": float("nan")},
        "y": {"fade": 0.5, "psnr": 20.0},
        "z": {"fade": 0.5, "psnr": 19.0},
    }
    assert best_rows(means, "fade", lower_better=True) == {"y", "z"}
    assert best_rows(means, "psnr", lower_better=False) == {"y"}
    assert best_rows({"x": {"psnr": float("nan")}}, "psnr", lower_better=False) == set()
    table = summary_table(means, ["fade", "psnr"], {"fade": True, "psnr": False}, {})
    assert table.count('class="best"') == 3 and "fade ↓" in table and "psnr ↑" in table


def test_images_are_never_upscaled(tmp_path, folders) -> None:
    big = tmp_path / "big"
    _save(big / "x.png", np.random.default_rng(1).random((200, 700, 3)))
    out = tmp_path / "out"
    build_report(out, {}, input=big, metrics="fade")
    thumb, crop, full = (
        Image.open(out / "images" / "0000" / f"c0-{k}.png").size for k in ("thumb", "crop", "full")
    )
    assert thumb == (256, 73) and full == (700, 200) and crop == (50, 50)
    small = Image.open(folders["root"] / "out" / "images" / "0000" / "c0-thumb.png").size
    assert small == SIZE[::-1]  # smaller than a thumbnail: kept as is


def test_run_section(report, folders) -> None:
    out, page, _ = report
    html = (out / "index.html").read_text()
    assert "training losses" in html and "validation PSNR" in html and "transmission t" in html
    assert "name: &lt;fabricated &amp; run&gt;" in html  # the config, escaped
    alts = {a["alt"]: a["src"] for t, a in page.tags if t == "img" and "alt" in a}
    samples = np.asarray(Image.open(out / alts["run: samples"]))
    assert abs(samples.mean() / 255 - 0.8) < 0.01  # the last grid
    assert html.count("mean t ") == 3  # the maps of the first three images, with their values
    for key in ("run: losses", "run: validation PSNR", "im0: t", "im0: a", "im2: t"):
        assert (out / alts[key]).is_file()


def test_first_n_with_a_note(tmp_path, folders) -> None:
    out = tmp_path / "out"
    report = build_report(
        out, {"A": folders["A"]}, input=folders["hazy"], metrics="fade", max_images=2
    )
    html = (out / "index.html").read_text()
    assert (report.shown, report.total) == (2, 3)
    assert html.count('<section class="image"') == 2 and "Showing the first 2 of 3 images" in html


def test_cli_warns_once_per_method_and_refuses_output_in_an_input(
    eid_cli, folders, tmp_path
) -> None:
    args = ["report", "--input", folders["hazy"], "--method", f"A={folders['A']}", "--method", f"B={folders['B']}",
            "--metrics", "fade"]  # fmt: skip
    run = eid_cli(*args, "--out", tmp_path / "out")
    assert run.code == 0, run.err
    warnings = [line for line in run.err.splitlines() if line.startswith("warning:")]
    assert (
        len(warnings) == 1 and warnings[0].startswith("warning: B (") and "missing" in warnings[0]
    )
    assert "error:" in eid_cli(*args, "--out", folders["hazy"] / "report").error_line()
    assert not (folders["hazy"] / "report").exists()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep")
    assert "holds no eid report" in eid_cli(*args, "--out", tmp_path / "foreign").error_line()
    assert eid_cli(*args, "--out", tmp_path / "out").code == 0  # a previous report is replaced


def test_bad_options_are_one_line_and_write_nothing(eid_cli, folders, tmp_path) -> None:
    out = tmp_path / "out"
    assert (
        "is not a folder"
        in eid_cli("report", "--input", tmp_path / "nope", "--out", out).error_line()
    )
    assert not out.exists()
    run = ["report", "--input", folders["hazy"], "--run", folders["run"], "--metrics", "fade"]
    assert "overlaps" in eid_cli(*run, "--out", folders["run"] / "report").error_line()
    assert "X,Y,SIZE" in eid_cli(*run, "--crop", "1,2", "--out", out).error_line()
    assert "NAME=DIR" in eid_cli(*run, "--method", f"={folders['A']}", "--out", out).error_line()
    assert (
        "may not be called input"
        in eid_cli(*run, "--method", f"input={folders['A']}", "--out", out).error_line()
    )
    assert not out.exists() and not (folders["run"] / "report").exists()


def test_evaluate_writes_the_same_report(eid_cli, folders, tmp_path) -> None:
    run = eid_cli(
        "evaluate",
        "--pred",
        folders["A"],
        "--ref",
        folders["clear"],
        "--report",
        tmp_path / "rep",
        "--quiet",
    )
    assert run.code == 0, run.err
    page = Page((tmp_path / "rep" / "index.html").read_text())
    columns = [a["data-column"] for t, a in page.tags if t == "td" and "data-column" in a]
    assert columns == ["A", "reference"] * 3
    assert (
        "--report needs folders"
        in eid_cli(
            "evaluate", "--pred", folders["A"] / "im0.png", "--report", tmp_path / "x"
        ).error_line()
    )


def _chromium() -> str | None:
    return next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )


def _load(browser: str, page: Path, shot: Path) -> str:
    """Load ``page`` headless, screenshot it, return the browser's log (console messages are logged as CONSOLE)."""
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
         "--window-size=1200,1600", f"--screenshot={shot}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.is_file(), done.stderr
    return done.stderr


def test_the_page_renders_in_a_headless_browser(report, tmp_path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no headless browser: install Debian's chromium package (apt-get install -y chromium)"
        )
    out, _, _ = report
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><body>x<script>undefinedFunction();</script></body></html>"
    )
    assert "CONSOLE" in _load(
        browser, broken, tmp_path / "broken.png"
    )  # the check can see a script error
    log = _load(browser, out / "index.html", tmp_path / "page.png")
    assert not [line for line in log.splitlines() if "CONSOLE" in line]
    pixels = np.asarray(Image.open(tmp_path / "page.png").convert("L"), dtype=float)
    assert pixels.std() > 10  # not blank
    # the slider's script: moving the first slider to 20 moves the before/after split to 20 %
    drag = (
        "var s = document.querySelector('.ba input'); s.value = 20; s.dispatchEvent(new Event('input')); "
        "document.title = 'pos=' + s.parentElement.style.getPropertyValue('--pos');"
    )
    harness = out / "slider-check.html"
    harness.write_text(
        (out / "index.html").read_text().replace("</body>", f"<script>{drag}</script></body>")
    )
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", harness.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120, check=False).stdout  # fmt: skip
    harness.unlink()
    assert "<title>pos=20%</title>" in dom


def test_a_field_of_view_is_found_and_scored_by_default(tmp_path: Path) -> None:
    """Endoscopy-like frames (a lit disc in black): without --ref the no-reference metrics are also scored
    inside the field of view (``@mask``) unless ``mask="none"``; frames lit to the edges get no mask."""
    from eid.metrics.mask import has_field_of_view

    yy, xx = np.mgrid[:48, :48]
    disc = ((yy - 23.5) ** 2 + (xx - 23.5) ** 2 < 22**2)[..., None]
    rng = np.random.default_rng(1)
    for i in range(2):
        _save(tmp_path / "hazy" / f"f{i}.png", disc * (0.3 + 0.4 * rng.random((48, 48, 3))))
        _save(tmp_path / "flat" / f"f{i}.png", 0.3 + 0.4 * rng.random((48, 48, 3)))
    assert has_field_of_view(torch.from_numpy(disc * 0.5).permute(2, 0, 1).float())
    assert not has_field_of_view(torch.full((3, 48, 48), 0.5))
    methods = {"A": tmp_path / "hazy"}
    build_report(tmp_path / "fov", methods, input=tmp_path / "hazy", metrics="fade")
    build_report(tmp_path / "off", methods, input=tmp_path / "hazy", metrics="fade", mask="none")
    build_report(
        tmp_path / "flat-out", {"A": tmp_path / "flat"}, input=tmp_path / "flat", metrics="fade"
    )
    assert "fade@mask" in (tmp_path / "fov" / "index.html").read_text()
    assert "fade@mask" not in (tmp_path / "off" / "index.html").read_text()
    assert "fade@mask" not in (tmp_path / "flat-out" / "index.html").read_text()
