"""The coupled-layer page (fxprune.viz): generated for zoo models and opened in real headless Chromium.

The DOM and screenshot checks drive the ``chromium`` command line (``--dump-dom`` gives the DOM after
the page's script ran, ``--screenshot`` a PNG); the interaction checks (click highlights a group,
hover shows a tooltip, a collapsed block opens) drive the same browser through Selenium and the
Debian ``chromedriver``. Every browser test skips, with the reason, only when Chromium is missing.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fxprune
from fxprune.models import build
from fxprune.viz import visualize

from cli_checks import main_error

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium chromium-driver)")
needs_driver = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium or chromedriver not installed (apt-get install chromium chromium-driver)")

MODELS = {
    "edsr": dict(blocks=2, channels=16),
    "imdn": dict(),  # channel splits and concatenations
}
_GRAPHS: dict[str, fxprune.ChannelGraph] = {}


def graph_of(name: str) -> fxprune.ChannelGraph:
    if name not in _GRAPHS:
        kwargs = MODELS.get(name, {})
        if name == "rcan400":
            model = build("rcan", groups=10, blocks=20, channels=16)  # the paper's 10 × 20 RCABs, 400+ convs
        else:
            model = build(name, **kwargs)
        _GRAPHS[name] = fxprune.analyze(model.eval(), (torch.randn(1, 3, 16, 16),))
    return _GRAPHS[name]


def chromium(*args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def distinct_colors(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG"
        return len(im.convert("RGB").getcolors(maxcolors=1 << 24))


def svg_groups(dom: str) -> set[int]:
    """Group ids named by drawn nodes and collapsed blocks (their data-g attributes) in the DOM."""
    out: set[int] = set()
    for attr in re.findall(r'data-g="([0-9 ]*)"', dom):
        out.update(int(t) for t in attr.split())
    return out


# --------------------------------------------------------------------------- without a browser
def test_page_is_self_contained_and_lists_every_group(tmp_path):
    graph = graph_of("edsr")
    path = visualize(graph, tmp_path / "edsr.html", title="EDSR <small>")
    text = path.read_text()
    assert path == tmp_path / "edsr.html"
    assert "EDSR &lt;small&gt;" in text and "<svg" in text and "<script>" in text
    assert not re.search(r"(src|href)=\"(https?:)?//", text), "the page must not load anything"
    for g in graph.groups:
        assert f'id="grow{g.id}"' in text


def test_keep_masks_are_validated_and_shown(tmp_path):
    graph = graph_of("edsr")
    trunk = graph.group_of("head")
    text = visualize(graph, tmp_path / "k.html", keep={trunk.id: np.arange(trunk.channels) < 4}).read_text()
    assert f"4/{trunk.channels * trunk.unit}" in text  # kept/total in the group table
    with pytest.raises(ValueError, match="no group 99"):
        visualize(graph, tmp_path / "bad.html", keep={99: np.ones(3, bool)})
    with pytest.raises(ValueError, match="one entry per unit"):
        visualize(graph, tmp_path / "bad.html", keep={trunk.id: np.ones(trunk.channels + 1, bool)})


# --------------------------------------------------------------------------- chromium command line
@needs_chromium
@pytest.mark.parametrize("name", list(MODELS))
def test_page_renders_every_group_in_chromium(name, tmp_path):
    graph = graph_of(name)
    page = visualize(graph, tmp_path / f"{name}.html")
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = re.search(r'data-rendered="(\d+)"', dom.stdout)
    assert rendered and int(rendered.group(1)) > 0, "the page's script did not draw anything"
    ids = {g.id for g in graph.groups}
    assert ids <= {int(x) for x in re.findall(r'id="grow(\d+)"', dom.stdout)}  # the table
    assert ids <= svg_groups(dom.stdout)  # the drawing: a node or a collapsed block per group
    shot = tmp_path / f"{name}.png"
    result = chromium("--window-size=1400,900", f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), result.stderr[-2000:]
    assert distinct_colors(shot) > 30, "screenshot is (nearly) blank"


# --------------------------------------------------------------------------- selenium: interaction
@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium or chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _groups_attr(el, name: str) -> set[int]:
    return {int(t) for t in (el.get_attribute(name) or "").split()}


@needs_driver
def test_click_highlights_the_group_and_hover_names_the_node(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    graph = graph_of("edsr")
    trunk = graph.group_of("head")
    browser.get(visualize(graph, tmp_path / "edsr.html").as_uri())
    nodes = browser.find_elements(By.CSS_SELECTOR, "#scene g.nd[data-n]")
    head = next(n for n in nodes if n.find_element(By.CSS_SELECTOR, "text.t1").get_attribute("textContent") == "head")
    ActionChains(browser).move_to_element(head).perform()
    tip = browser.find_element(By.ID, "tip")
    assert tip.is_displayed() and "head" in tip.text and "Conv2d" in tip.text and f"g{trunk.id}" in tip.text
    assert "body.0.conv2" in tip.text  # the group's members are listed
    head.click()
    for n in browser.find_elements(By.CSS_SELECTOR, "#scene g.nd[data-n]"):
        classes = n.get_attribute("class").split()
        out, all_ = _groups_attr(n, "data-o"), _groups_attr(n, "data-g")
        assert ("hl" in classes) == (trunk.id in out), n.get_attribute("data-n")
        assert ("hlin" in classes) == (trunk.id in all_ - out), n.get_attribute("data-n")
    assert "sel" in browser.find_element(By.ID, f"grow{trunk.id}").get_attribute("class")
    # a table row selects its group too
    other = next(g for g in graph.groups if g.kind == "free")
    browser.find_element(By.ID, f"grow{other.id}").click()
    lit = browser.find_elements(By.CSS_SELECTOR, "#scene g.nd.hl")
    assert lit and all(other.id in _groups_attr(n, "data-o") for n in lit)


@needs_driver
def test_rcan_400_layers_renders_collapsed_and_expands(browser, tmp_path):
    from selenium.webdriver.common.by import By

    graph = graph_of("rcan400")
    page = visualize(graph, tmp_path / "rcan.html")
    assert page.stat().st_size < 1_000_000
    start = time.perf_counter()
    browser.get(page.as_uri())
    load_s = time.perf_counter() - start
    body = browser.find_element(By.TAG_NAME, "body")
    drawn = int(body.get_attribute("data-rendered"))
    render_ms = body.get_attribute("data-render-ms")
    assert 0 < drawn < 100, "the first view must be collapsed"
    blocks = browser.find_elements(By.CSS_SELECTOR, "#scene g.cb")
    assert blocks, "no collapsed block"
    assert {g.id for g in graph.groups} <= svg_groups(browser.page_source)
    blocks[0].click()
    assert int(len(browser.find_elements(By.CSS_SELECTOR, "#scene g.nd"))) > drawn
    shot = tmp_path / "rcan.png"
    browser.get(page.as_uri())
    browser.save_screenshot(str(shot))
    assert distinct_colors(shot) > 30
    print(f"RCAN page: {page.stat().st_size / 1024:.0f} KiB, load {load_s:.2f} s, "
          f"first render {render_ms} ms, {drawn} items drawn")


# --------------------------------------------------------------------------- the command
def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fxprune", *args], capture_output=True, text=True, timeout=300)


def test_graph_command_writes_the_page(tmp_path):
    out = tmp_path / "coupled.html"
    result = run("graph", "edsr", "--blocks", "1", "--channels", "8", "--input-size", "16", "16", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout and "groups: " in result.stdout and "coupled" in result.stdout
    assert "<svg" in out.read_text()


def test_graph_command_errors_are_one_line(tmp_path, capsys):
    """The same main() as the executable (test_graph_command_writes_the_page runs the real one)."""
    main_error(["graph", "edsr", "-o", str(tmp_path / "missing" / "x.html")], capsys,
               "fxprune graph: error: output directory")
