"""The HTML report in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium is started with `--remote-debugging-pipe` (DevTools messages over file descriptors 3 and
4, no port, no websocket library) on the rendered file. The page fails the test on any console
error or warning, uncaught exception, browser log entry of level error (a failed load, a refused
Content-Security-Policy) and on any request for something other than the file itself. A
screenshot at desktop and phone width is kept in the test's temporary directory (printed), for
CI to collect. CI installs Debian's `chromium` in `.ci/run`; without it these tests are skipped.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalkit.metrics.flips import flips_to_show, orient
from evalkit.report.compare import write_comparison
from evalkit.report.document import write_reports
from evalkit.report.views import read_pairs
from evalkit.results.estimates import Flips
from evalkit.results.files import read_results
from evalkit.results.generation import GenerationPrompt
from evalkit.results.schema import GateVerdict, PairText, RunResult
from evalkit.results.texts import texts_file, write_pair_texts

GOLDEN = Path(__file__).parents[1] / "golden"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it in .ci/run)")

PHONE, DESKTOP = (390, 844), (1280, 900)
INJECTED = [
    "<script>window.__injected = 'script'</script>",
    "<img src=x onerror=\"window.__injected = 'img'\">",
    '"><svg onload="window.__injected = \'svg\'">',
    "</pre></details><script>window.__injected = 'breakout'</script>",
    "javascript:window.__injected = 'href'",
]


class Page:
    """One Chromium tab over the DevTools pipe, recording the events a report must not cause."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_browser, from_us = os.pipe()
        to_us, from_browser = os.pipe()

        def wire_pipes() -> None:  # in the child: DevTools reads fd 3 and writes fd 4
            reading, writing = os.dup(to_browser), os.dup(from_browser)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
        ]
        self.process = subprocess.Popen(
            [CHROMIUM, *flags, "about:blank"],
            preexec_fn=wire_pipes,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self.writer, self.reader = os.fdopen(from_us, "wb"), os.fdopen(to_us, "rb")
        self.buffer, self.last_id, self.events = b"", 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.last_id += 1
        message: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if getattr(self, "session", None):
            message["sessionId"] = self.session
        self.writer.write(json.dumps(message).encode() + b"\0")
        self.writer.flush()
        while True:
            reply = self._next()
            if reply.get("id") == self.last_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return dict(reply["result"])
            self.events.append(reply)

    def _next(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = self.reader.read1(1 << 20)
            assert chunk, "chromium closed the DevTools pipe"
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def open(self, path: Path, viewport: tuple[int, int]) -> None:
        width, height = viewport
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, "the page did not finish loading in 30 s"
            self.events.append(self._next())
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    def problems(self, page: Path) -> list[str]:
        """Console errors and warnings, exceptions, error log entries, and requests for anything but `page`."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params['args']]}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry']['text']}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url != page.resolve().as_uri() and not url.startswith("data:"):
                    found.append(f"request: {url}")
        return found

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.writer.close()
        self.reader.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    opened = Page(tmp_path / "profile")
    try:
        yield opened
    finally:
        opened.close()


def golden_with_gate() -> RunResult:
    """The golden results with a failed gate and the text of some flipped pairs, as `bench` writes them."""
    result = read_results(GOLDEN / "results.json")
    gate = [
        GateVerdict(
            rule="aligned beats base",
            kind="superiority",
            passed=True,
            status="passed",
            reason="Δ pref. acc +0.444, p = 2e-22",
            dataset="tinyworld",
            model="aligned",
            baseline="base",
            metric="preference/accuracy",
            value=0.444,
            ci_low=0.37,
            ci_high=0.52,
            p_value=1.9e-22,
            n=225,
        ),
        GateVerdict(
            rule="format holds",
            kind="absolute",
            passed=False,
            status="failed",
            reason="pref. acc 0.747 < 0.8",
            dataset="tinyworld",
            subset="format",
            model="aligned",
            metric="preference/accuracy",
            value=0.747,
            threshold=0.8,
            n=75,
        ),
    ]
    texts = [
        PairText(
            dataset=dataset,
            id=i,
            subset=i.split("-")[0],
            prompt=f"Question {i}?",
            chosen="A good answer.",
            rejected="A bad answer.",
        )
        for dataset, ids in flips_to_show(result.comparisons, result.reference).items()
        for i in ids
    ]
    return result.model_copy(update={"gate": gate, "flip_examples": texts})


def with_texts(out: Path, result: RunResult, text: str = "") -> None:
    """Write the per-pair texts file `bench` writes beside the scores, for every pair of the golden run."""
    for d in result.datasets:
        ids = sorted({p.id for p in read_pairs(result, out)[d.name]})
        pairs = [
            PairText(
                dataset=d.name,
                id=i,
                subset=i.split("-")[0],
                prompt=f"Question {i}? {text}",
                chosen="Yes.",
                rejected="No.",
            )
            for i in ids
        ]
        write_pair_texts(d.name, pairs, out / texts_file(d.pairs_file))


KEY_TABLES = "[...document.querySelectorAll('#headline .wide .scroll')]"
"""Each model against the anchor: the tables a reviewer must read without scrolling."""


def test_report_renders_without_console_errors_or_requests(tmp_path: Path, page: Page) -> None:
    out = tmp_path / "report"
    shutil.copytree(GOLDEN, out)
    with_texts(out, golden_with_gate())
    [_, html] = write_reports(golden_with_gate(), out)

    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.open(html, viewport)
        assert page.problems(html) == []
        print(f"screenshot: {page.screenshot(tmp_path / f'report-{name}.png')}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport[0], f"{name}: the page scrolls sideways ({width}px wide); only tables may"
        # the key columns of every comparison (metric, Δ with its interval, p, verdict) fit without scrolling
        overflow = page.evaluate(f"{KEY_TABLES}.map(s => s.scrollWidth - s.clientWidth)")
        assert overflow and max(overflow) <= 0, f"{name}: a comparison table scrolls sideways by {overflow}"
        sentence = page.evaluate("document.querySelector('#sentence').textContent")
        assert sentence.startswith("aligned beats base on tinyworld: preference accuracy +0.44 [+0.37, +0.52]")
    # on a phone the details are one tap away
    page.evaluate("document.querySelector('.wide input').click()")
    assert page.evaluate("getComputedStyle(document.querySelector('.wide th.detail')).display") != "none"

    assert page.evaluate("document.querySelectorAll('svg.chart').length") >= 4
    verdict = page.evaluate("document.querySelector('#verdict').textContent")
    assert "Gate FAILED: 1 of 2 rules failed" in verdict
    assert page.evaluate("[...document.querySelectorAll('#verdict .tag')].map(t => t.textContent)") == ["FAIL", "pass"]
    headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert headings[:5] == ["Headline", "By subset", "Charts", "Flipped pairs", "Pair explorer"]

    # printable: printing unfolds every folded block (the page's one script)
    page.call("Page.printToPDF", {"printBackground": True})
    assert page.evaluate("[...document.querySelectorAll('details')].every(d => d.open)")
    assert page.problems(html) == []


CHART_TEXT = """[...document.querySelectorAll('svg.chart')].map(svg => {
  const scale = svg.getScreenCTM().a;
  const boxes = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()).map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * scale,
            box: [r.left, r.top, r.right, r.bottom]};
  });
  return {label: svg.getAttribute('aria-label'), boxes};
})"""


def overlapping(boxes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes intersect by more than a pixel each way."""
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            (l1, t1, r1, b1), (l2, t2, r2, b2) = a["box"], b["box"]
            if min(r1, r2) - max(l1, l2) > 1 and min(b1, b2) - max(t1, t2) > 1:
                found.append((a["text"], b["text"]))
    return found


def test_chart_text_is_readable_and_never_overlaps_at_laptop_width(tmp_path: Path, page: Page) -> None:
    out = tmp_path / "report"
    shutil.copytree(GOLDEN, out)
    [_, html] = write_reports(golden_with_gate(), out)
    page.open(html, DESKTOP)
    charts = page.evaluate(CHART_TEXT)
    assert len(charts) >= 5  # forest, margins, length, calibration, training
    for chart in charts:
        smallest = min(b["px"] for b in chart["boxes"])
        assert smallest >= 12, f"{chart['label']}: text of {smallest:.1f} px"
        assert overlapping(chart["boxes"]) == [], chart["label"]
    print(f"screenshot: {page.screenshot(tmp_path / 'charts-desktop.png')}")


def test_pair_explorer_filters_sorts_and_shows_the_texts(tmp_path: Path, page: Page) -> None:
    out = tmp_path / "report"
    shutil.copytree(GOLDEN, out)
    result = golden_with_gate()
    with_texts(out, result)
    [_, html] = write_reports(result, out)
    page.open(html, PHONE)
    assert page.problems(html) == []
    count = "document.querySelector('#ex-count').textContent"
    rows = "[...document.querySelectorAll('#explorer tbody tr:not(.ex-detail)')]"

    def choose(control: str, value: str) -> None:
        page.evaluate(
            f"(() => {{ const c = document.querySelector('#{control}'); c.value = {json.dumps(value)};"
            " c.dispatchEvent(new Event('input')); })()"
        )

    assert page.evaluate(count) == "225 of 225 pairs · page 1 of 5"
    choose("ex-flip", "down")  # right→wrong: the 10 pairs results.json lists
    assert page.evaluate(count).startswith("10 of 225 pairs")
    shown = page.evaluate(f"{rows}.map(r => r.cells[0].textContent)")
    comparison = next(c for c in result.comparisons if c.metric == "preference/accuracy" and c.subset == "all")
    flips = orient(comparison, "base").flips
    assert flips is not None and sorted(shown) == flips.right_to_wrong_ids
    assert set(page.evaluate(f"{rows}.map(r => r.cells[6].textContent)")) == {"right→wrong"}
    choose("ex-flip", "")
    choose("ex-subset", "0")  # arithmetic
    assert page.evaluate(count).startswith("75 of 225 pairs")
    choose("ex-search", "arithmetic-0002")
    assert page.evaluate(f"{rows}.map(r => r.cells[0].textContent)") == ["arithmetic-0002"]
    page.evaluate(f"{rows}[0].click()")
    assert "Question arithmetic-0002?" in page.evaluate("document.querySelector('.ex-detail').textContent")
    choose("ex-search", "")
    choose("ex-subset", "")
    page.evaluate("document.querySelector('th[data-sort=change]').click()")  # ascending Δ margin
    changes = page.evaluate(f"{rows}.map(r => r.cells[5].textContent)")
    values = [float(c.replace("−", "-")) for c in changes]
    assert values == sorted(values) and len(values) == 50
    page.evaluate("document.querySelector('th[data-sort=change]').click()")  # and descending
    again = [float(c.replace("−", "-")) for c in page.evaluate(f"{rows}.map(r => r.cells[5].textContent)")]
    assert again == sorted(again, reverse=True) and again[0] > values[-1]
    page.evaluate("document.querySelector('#ex-next').click()")
    assert page.evaluate(count) == "225 of 225 pairs · page 2 of 5"
    print(f"screenshot: {page.screenshot(tmp_path / 'explorer-phone.png')}")
    assert page.problems(html) == []


def test_injected_markup_shows_as_text_and_runs_nothing(tmp_path: Path, page: Page) -> None:
    result = golden_with_gate()
    evil = " ".join(INJECTED)
    generation = result.generation
    assert generation is not None
    generation = generation.model_copy(
        update={
            "prompts": [GenerationPrompt(id=f"p {evil}", text=evil), *generation.prompts[1:]],
            "samples": [
                s.model_copy(update={"prompt_id": f"p {evil}", "completion": evil, "scores": {evil: 1.0}})
                if s.prompt_id == generation.prompts[0].id
                else s
                for s in generation.samples
            ],
        }
    )
    rename = {"aligned": f"aligned {INJECTED[0]}"}
    metrics = [
        m.model_copy(
            update={
                "model": rename.get(m.model, m.model),
                "subset": m.subset if m.subset == "all" else f"{m.subset}{INJECTED[1]}",
            }
        )
        for m in result.metrics
    ]
    comparisons = [c.model_copy(update={"model": rename.get(c.model, c.model)}) for c in result.comparisons]
    flip = Flips(wrong_to_right=1, right_to_wrong=0, wrong_to_right_ids=[f"id {INJECTED[2]}"], right_to_wrong_ids=[])
    comparisons = [c.model_copy(update={"flips": flip}) if c.flips else c for c in comparisons]
    texts = [
        PairText(dataset="tinyworld", id=f"id {INJECTED[2]}", subset=evil, prompt=evil, chosen=evil, rejected=evil)
    ]
    gate = [g.model_copy(update={"rule": evil, "reason": evil}) for g in result.gate or []]
    hostile = result.model_copy(
        update={
            "generation": generation,
            "metrics": metrics,
            "comparisons": comparisons,
            "flip_examples": texts,
            "gate": gate,
            "reliability": [r.model_copy(update={"model": rename.get(r.model, r.model)}) for r in result.reliability],
            "models": [m.model_copy(update={"name": rename.get(m.name, m.name)}) for m in result.models],
            "suite": result.suite.model_copy(update={"name": evil, "description": evil}),
            "command": evil,
        }
    )
    shutil.copytree(GOLDEN / "pairs", tmp_path / "pairs")
    with_texts(tmp_path, result, evil)
    [_, html] = write_reports(hostile, tmp_path)
    page.open(html, DESKTOP)
    page.evaluate("document.querySelector('#explorer tbody tr').click()")  # the explorer shows the texts too
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    print(f"screenshot: {page.screenshot(tmp_path / 'escaping.png')}")

    assert page.evaluate("window.__injected === undefined"), page.evaluate("window.__injected")
    # the report's own script and the explorer's data block, which nothing executes
    assert page.evaluate("[...document.querySelectorAll('script')].map(s => s.type)") == ["", "application/json"]
    assert page.evaluate("document.querySelectorAll('img, [onerror], [onload], a[href^=javascript]').length") == 0
    text = page.evaluate("document.body.innerText")
    for snippet in INJECTED:
        assert snippet in text  # shown, as text
    assert page.evaluate("[...document.querySelectorAll('svg text')].some(t => t.textContent.includes('<script>'))")
    assert page.problems(html) == []  # not even a script refused by the page's Content-Security-Policy


def test_comparison_of_two_runs_renders_cleanly(tmp_path: Path, page: Page) -> None:
    [_, html] = write_comparison(GOLDEN / "results.json", GOLDEN / "results.json", tmp_path)
    page.open(html, PHONE)
    assert page.problems(html) == []
    assert "Pair by pair" in page.evaluate("document.body.innerText")
    print(f"screenshot: {page.screenshot(tmp_path / 'compare-phone.png')}")


def test_report_of_results_alone_notes_the_missing_per_pair_charts(tmp_path: Path, page: Page) -> None:
    shutil.copy(GOLDEN / "results.json", tmp_path)
    result = read_results(tmp_path / "results.json")
    assert read_pairs(result, tmp_path) == {}
    [_, html] = write_reports(result, tmp_path / "out", results_dir=tmp_path)
    page.open(html, PHONE)
    assert page.problems(html) == []
    assert "Reward-margin charts need the per-pair file" in page.evaluate("document.body.innerText")
