"""The browser check: `dvc plots show` renders evaluate's plots with the project's templates
(.dvc/plots/) as an HTML page, and headless Chromium draws them: the confusion matrices with
their counts and the ROC curve with a colour per model, among the others.

DVC's page loads vega, vega-lite and vega-embed from a CDN, which neither this machine nor
CI can reach: the page is rendered with `--html-template` pointing at local copies.
`make browser-deps` installs them into .cache/vega, and headless Chromium + chromedriver
from Debian; no test installs anything. When they are missing these tests skip and say
so (run `make browser-deps` first); under CI=true they fail instead, since CI
(`.ci/run`) runs `make browser-deps` before `make test`.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import PROJECT_ROOT, dvc, git

from imdb_sentiment.evaluation.plots import write_plot_data
from imdb_sentiment.inference.test_split import EvaluateParams

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
VEGA_BUILD = PROJECT_ROOT / ".cache/vega/node_modules"
VEGA_SCRIPTS = (
    VEGA_BUILD / "vega/build/vega.min.js",
    VEGA_BUILD / "vega-lite/build/vega-lite.min.js",
    VEGA_BUILD / "vega-embed/build/vega-embed.min.js",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2600",
)
MODELS = ("rf", "linear", "distilbert", "distilbert_int8")

# DVC's page, with local scripts instead of the CDN. vegaEmbed is wrapped to draw SVG
# (whose titles and marks the test can read) and to count the plots it finished.
HTML_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>DVC Plot</title>
{local_scripts}
<script>
  window.plotsDrawn = 0;
  window.plotErrors = [];
  const dvcEmbed = window.vegaEmbed;
  window.vegaEmbed = (el, spec) =>
    dvcEmbed(el, spec, {{renderer: "svg", actions: false}})
      .then(() => {{ window.plotsDrawn += 1; }})
      .catch((error) => {{ window.plotErrors.push(String(error)); }});
</script>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def missing_browser_deps() -> list[str]:
    paths = [Path(CHROMIUM), Path(CHROMEDRIVER), *VEGA_SCRIPTS]
    return [str(path) for path in paths if not path.exists()]


@pytest.fixture(scope="module")
def browser_deps() -> None:
    """Skip (fail under CI=true) when Chromium, chromedriver or the vega copies are
    missing: installing them is `make browser-deps`'s job, never a test's."""
    missing = missing_browser_deps()
    if not missing:
        return
    reason = (
        "headless Chromium/chromedriver or .cache/vega missing: run `make browser-deps` "
        f"(missing: {', '.join(missing)})"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def write_evaluate_plots(repo: Path, seed: int) -> None:
    """evaluate's plot data of every model, from 400 reviews scored at random."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    frame = pd.DataFrame({"label": labels, "n_tokens": rng.integers(10, 900, 400)})
    config = EvaluateParams()
    for index, name in enumerate(MODELS):
        noise = 0.6 + 0.15 * index
        proba = np.clip(labels * (1 - noise) + rng.random(400) * noise, 0, 1)
        folder = repo / "plots/evaluate" / name
        shutil.rmtree(folder, ignore_errors=True)
        write_plot_data(folder, frame, proba, config.curve_points, config.length_buckets)


@pytest.fixture
def plots_repo(tmp_path: Path) -> Path:
    """A Git + DVC repo with the project's dvc.yaml, plot templates and evaluate's plot data
    for each model (scores drawn at random, as the plots do not care how good they are)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(PROJECT_ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copy2(PROJECT_ROOT / "params.yaml", repo / "params.yaml")
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    shutil.copytree(PROJECT_ROOT / ".dvc/plots", repo / ".dvc/plots")
    write_evaluate_plots(repo, seed=0)
    # Two training curves, as train_distilbert's DVCLive callback writes them.
    for metric in ("train/loss", "eval/accuracy"):
        path = repo / "dvclive/train_distilbert/plots/metrics" / f"{metric}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        name = metric.split("/")[1]
        rows = "".join(f"0\t{step}\t{1 / (step + 2):.4f}\n" for step in range(0, 100, 10))
        path.write_text(f"timestamp\tstep\t{name}\n{rows}")
    return repo


def png_pixels(path: Path) -> tuple[int, int, np.ndarray]:
    """Width, height and the raw (filtered) scanline bytes of an 8-bit PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, width, height = 8, b"", 0, 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    return width, height, np.frombuffer(zlib.decompress(idat), dtype=np.uint8)


def chromium(tmp_path: Path):
    """A headless Chromium, offline, with a profile of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_chromium_draws_the_confusion_matrices_and_the_roc_curve(
    browser_deps: None, plots_repo: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    scripts = "\n".join(f'<script src="{path.as_uri()}"></script>' for path in VEGA_SCRIPTS)
    template = tmp_path / "template.html"
    template.write_text(HTML_TEMPLATE.format(local_scripts=scripts), encoding="utf-8")
    out_dir = tmp_path / "rendered"
    dvc(plots_repo, "plots", "show", "--html-template", str(template), "-o", str(out_dir))
    page = out_dir / "index.html"
    expected_plots = page.read_text(encoding="utf-8").count("vegaEmbed('#")
    # The confusion matrices, ROC, precision-recall, accuracy by length, and a chart per
    # training curve.
    assert expected_plots == 6

    driver = chromium(tmp_path)
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: (
                d.execute_script("return window.plotsDrawn + window.plotErrors.length")
                >= expected_plots
            )
        )
        assert driver.execute_script("return window.plotErrors") == []
        assert driver.execute_script("return window.plotsDrawn") == expected_plots
        svgs = driver.find_elements(By.CSS_SELECTOR, "svg.marks")
        assert len(svgs) == expected_plots
        by_title = {}
        for svg in svgs:
            titles = svg.find_elements(By.CSS_SELECTOR, "g.role-title text")
            by_title[" ".join(t.get_attribute("textContent") for t in titles)] = svg

        def plot_titled(title: str):
            found = [svg for text, svg in by_title.items() if title in text]
            assert len(found) == 1, (title, list(by_title))
            return found[0]

        # One matrix per model (a facet each), its count printed in each of its 4 cells:
        # each model's counts add up to the reviews.
        confusion = plot_titled("Confusion matrices (test)")
        headers = [
            t.get_attribute("textContent")
            for t in confusion.find_elements(By.CSS_SELECTOR, "g.role-column-header text")
        ]
        assert headers == list(MODELS)
        counts = [
            int(t.get_attribute("textContent").replace(",", ""))
            for t in confusion.find_elements(By.CSS_SELECTOR, "g.mark-text.role-mark text")
        ]
        assert len(counts) == 4 * len(MODELS)
        assert [sum(counts[i : i + 4]) for i in range(0, len(counts), 4)] == [400] * len(MODELS)

        roc = plot_titled("ROC curve (test)")
        # A curve per model, each in its own colour, named by the model in the legend.
        paths = roc.find_elements(By.CSS_SELECTOR, "g.mark-line path")
        curves = [p for p in paths if len(p.get_attribute("d") or "") > 200]
        assert len(curves) == len(MODELS)
        assert len({curve.get_attribute("stroke") for curve in curves}) == len(MODELS)
        legend = [
            t.get_attribute("textContent")
            for t in roc.find_elements(By.CSS_SELECTOR, "g.role-legend text")
        ]
        assert [name for name in legend if name in MODELS] == list(MODELS)

        # The training curves: a chart per metric, titled by the metric's name.
        for title in ("train loss", "eval accuracy"):
            plot_titled(title)

        screenshot = tmp_path / "plots.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()

    width, height, pixels = png_pixels(screenshot)
    assert (width, height) >= (800, 600)
    assert screenshot.stat().st_size > 20_000
    # Not a blank page: the plots put many distinct byte values in the image.
    assert len(np.unique(pixels)) > 50


def test_each_confusion_cell_sits_under_its_model_and_run(
    browser_deps: None, plots_repo: Path, tmp_path: Path
) -> None:
    """Two runs, four models: every count drawn lies in the column headed by its model and
    the row of its run (a facet sorted by a list can put the headers in one order and the
    matrices in another)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    git(plots_repo, "add", "-A")
    git(plots_repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    expected = {}
    for rev, seed in (("HEAD", 0), ("workspace", 1)):
        if rev == "workspace":
            write_evaluate_plots(plots_repo, seed)
        for model in MODELS:
            counts = pd.read_csv(plots_repo / "plots/evaluate" / model / "confusion.csv")
            expected[model, rev] = sorted(counts["reviews"].tolist())
    assert expected["rf", "HEAD"] != expected["rf", "workspace"]

    scripts = "\n".join(f'<script src="{path.as_uri()}"></script>' for path in VEGA_SCRIPTS)
    template = tmp_path / "template.html"
    template.write_text(HTML_TEMPLATE.format(local_scripts=scripts), encoding="utf-8")
    out_dir = tmp_path / "rendered"
    dvc(plots_repo, "plots", "diff", "HEAD", "--html-template", str(template), "-o", str(out_dir))
    driver = chromium(tmp_path)
    try:
        driver.get((out_dir / "index.html").as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: (
                d.execute_script("return window.plotsDrawn + window.plotErrors.length") >= 1
                and len(d.find_elements(By.CSS_SELECTOR, "svg.marks")) >= 1
            )
        )
        [confusion] = [
            svg
            for svg in driver.find_elements(By.CSS_SELECTOR, "svg.marks")
            if "Confusion matrices" in svg.get_attribute("textContent")
        ]

        def centres(selector: str, axis: str) -> list[tuple[float, str]]:
            found = confusion.find_elements(By.CSS_SELECTOR, selector)
            size = "width" if axis == "x" else "height"
            return [
                (t.rect[axis] + t.rect[size] / 2, t.get_attribute("textContent")) for t in found
            ]

        columns = centres("g.role-column-header text", "x")
        # The row headers hold the y axes too: the run labels are those naming a run.
        revs = ("HEAD", "workspace")
        rows = [row for row in centres("g.role-row-header text", "y") if row[1] in revs]
        assert sorted(name for _, name in columns) == sorted(MODELS)
        assert sorted(name for _, name in rows) == list(revs)
        drawn: dict[tuple[str, str], list[int]] = {key: [] for key in expected}
        for (x, text), (y, _) in zip(
            centres("g.mark-text.role-mark text", "x"),
            centres("g.mark-text.role-mark text", "y"),
            strict=True,
        ):
            model = min(columns, key=lambda column: abs(column[0] - x))[1]
            rev = min(rows, key=lambda row: abs(row[0] - y))[1]
            drawn[model, rev].append(int(text.replace(",", "")))
        assert {key: sorted(counts) for key, counts in drawn.items()} == expected
    finally:
        driver.quit()


def test_make_offline_plots_makes_dvc_plots_show_render_with_no_network(
    browser_deps: None, plots_repo: Path, tmp_path: Path
) -> None:
    """`make offline-plots` (scripts/offline_plots.sh) sets DVC's template: a plain
    `dvc plots show` then writes a page that loads only local files, and it draws."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    (plots_repo / "scripts").mkdir()
    shutil.copy2(PROJECT_ROOT / "scripts/offline_plots.sh", plots_repo / "scripts")
    # The copies `make browser-deps` fetched, so that the script has nothing to download.
    (plots_repo / ".cache").mkdir()
    (plots_repo / ".cache/vega").symlink_to(PROJECT_ROOT / ".cache/vega")
    result = subprocess.run(
        ["bash", "scripts/offline_plots.sh"],
        cwd=plots_repo,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "dvc plots show now renders offline" in result.stdout

    out_dir = tmp_path / "rendered"
    dvc(plots_repo, "plots", "show", "-o", str(out_dir))
    page = (out_dir / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert len(sources) == 3 and all(src.startswith("file://") for src in sources), sources
    expected_plots = page.count("vegaEmbed('#")
    assert expected_plots >= 6

    driver = chromium(tmp_path)
    try:
        driver.get((out_dir / "index.html").as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".marks")) >= expected_plots
        )
    finally:
        driver.quit()
