"""report.html in a real browser (Debian's headless Chromium): loads cleanly, every image displays."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image
from report_runs import TWO_BACKENDS, chromium, chromium_path, diverge_first_answer, edited_copy, run_scenario

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (Debian: apt-get install chromium)"),
]

# Appended to a copy of the report (never to the report itself): records each image's decoded width.
PROBE = """<script>
window.addEventListener("load", () => {
  const widths = Array.from(document.images, (img) => img.complete ? img.naturalWidth : 0);
  document.body.setAttribute("data-probe", JSON.stringify(widths));
});
</script>"""


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    """A real two-backend run whose slow backend's first answer was edited to diverge and hold markup."""
    run_dir = run_scenario(tmp_path_factory.mktemp("browser"), TWO_BACKENDS)
    copy = edited_copy(run_dir, tmp_path_factory.mktemp("edited") / "run", edit_record=diverge_first_answer)
    from benchbench.report import write_report

    return write_report(copy)


def test_report_loads_without_console_messages(report_html, tmp_path):
    result = chromium("--enable-logging=stderr", "--v=0", "--dump-dom", report_html.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert "<script" not in result.stdout.lower()
    assert "&lt;script&gt;alert('output')&lt;/script&gt;" in result.stdout  # the model's markup is text in the DOM


def test_every_image_decodes_in_the_browser(report_html, tmp_path):
    html = report_html.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr
    widths = json.loads(re.search(r'data-probe="([^"]*)"', result.stdout).group(1).replace("&quot;", '"'))
    assert len(widths) == html.count("<img ") >= 4
    assert all(width > 0 for width in widths), widths


def test_screenshot_shows_a_rendered_page(report_html, tmp_path):
    shot = tmp_path / "report.png"
    result = chromium("--window-size=1280,2400", f"--screenshot={shot}", report_html.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50  # text, tables and plots, not blank
