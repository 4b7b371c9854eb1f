"""The page at `/` in headless Chromium against the real service: gunicorn, Redis and an RQ worker."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.conftest import ARTIFACTS, make_photo
from tests.conftest import make_image

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"


# ---------------------------------------------------------------- helpers


def expect(target):
    """Playwright's retrying assertions, imported late so collecting the suite does not need Playwright."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def open_page(page, url):
    page.goto(url)
    expect(page.locator("#op-select")).to_be_enabled()


def pick(page, *files):
    """Choose files with the file dialog's input: each a (name, bytes, media type)."""
    payload = [{"name": name, "mimeType": kind, "buffer": data} for name, data, kind in files]
    page.get_by_label("Drop images here").set_input_files(payload)


def add_step(page, op):
    page.get_by_label("Op to add").select_option(op)
    page.get_by_role("button", name="Add step").click()


def card(page, name):
    return page.locator(".job").filter(has=page.locator(".job-name", has_text=name))


def record_statuses(page):
    """Log every status change of every job card into window.__seen as [status, progress]."""
    page.evaluate("""() => {
      window.__seen = [];
      new MutationObserver((records) => {
        for (const record of records) {
          const bar = record.target.querySelector("progress");
          window.__seen.push([record.target.dataset.status, bar.hasAttribute("value") ? bar.value : null]);
        }
      }).observe(document.getElementById("job-list"),
                 {attributes: true, subtree: true, attributeFilter: ["data-status"]});
    }""")


def job_ids(page):
    return [item["id"] for item in page.evaluate("JSON.parse(localStorage.getItem('imgjobs.recent') || '[]')")]


def api_get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


PHOTO = ("photo.jpg", make_photo(), "image/jpeg")
SMALL = ("small.png", make_image(size=(120, 90)), "image/png")


# ---------------------------------------------------------------- the main path


def test_photo_through_two_steps_progress_result_and_download(page, web_server):
    open_page(page, web_server)
    pick(page, PHOTO)
    tray_item = page.locator(".tray-item")
    expect(tray_item.locator(".tray-name")).to_have_text("photo.jpg")
    expect(tray_item).to_contain_text(re.compile(r"\d+ KB"))
    expect(tray_item.locator("img")).to_have_js_property("complete", True)
    assert tray_item.locator("img").evaluate("img => img.naturalWidth") == 1600  # the preview, before any upload

    add_step(page, "resize")
    page.get_by_role("group", name="Step 1: resize").get_by_label("width").fill("640")
    add_step(page, "grayscale")
    expect(page.locator(".step")).to_have_count(2)
    record_statuses(page)
    page.get_by_role("button", name="Process 1 image").click()

    job = card(page, "photo.jpg")
    expect(job).to_have_attribute("data-status", "finished")
    expect(job.locator(".status-text")).to_have_text("Done")
    expect(job.locator("progress")).to_have_js_property("value", 1)
    seen = page.evaluate("window.__seen")
    statuses = [status for status, _ in seen]
    assert statuses[0] == "uploading" and "queued" in statuses and statuses[-1] == "finished", seen
    progress = [value for status, value in seen if status in ("started", "finished")]
    assert progress == sorted(progress) and progress[-1] == 1, seen

    after = job.locator("img.after")
    expect(after).to_have_js_property("naturalWidth", 640)
    expect(after).to_have_js_property("naturalHeight", 480)
    expect(job.locator("img.before")).to_have_js_property("naturalWidth", 1600)
    expect(job.locator(".sizes")).to_contain_text("1600×1200")
    expect(job.locator(".result-size")).to_contain_text("640×480")

    with page.expect_download() as download_info:
        job.get_by_role("link", name="Download the result for photo.jpg").click()
    download = download_info.value
    assert download.suggested_filename == "photo.jpeg"
    with Image.open(download.path()) as image:
        image.load()
        assert image.size == (640, 480) and image.mode == "L" and image.format == "JPEG"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)


def test_three_dropped_photos_with_a_preset(page, web_server):
    open_page(page, web_server)
    files = [{"name": f"holiday-{n}.jpg", "b64": base64.b64encode(make_photo((1200, 900), seed=n)).decode()}
             for n in range(3)]
    page.evaluate("""(files) => {
      const transfer = new DataTransfer();
      for (const {name, b64} of files) {
        const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        transfer.items.add(new File([data], name, {type: "image/jpeg"}));
      }
      const zone = document.getElementById("drop");
      for (const type of ["dragenter", "dragover", "drop"]) {
        zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
      }
    }""", files)
    expect(page.locator(".tray-item")).to_have_count(3)

    page.get_by_role("button", name="Thumbnail 512").click()
    expect(page.locator(".step")).not_to_have_count(0)
    page.get_by_role("button", name="Process 3 images").click()

    for n in range(3):
        job = card(page, f"holiday-{n}.jpg")
        expect(job).to_have_attribute("data-status", "finished")
        after = job.locator("img.after")
        expect(after).to_have_js_property("complete", True)
        assert after.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [512, 384]
    expect(page.locator(".tray-item")).to_have_count(0)
    job = card(page, "holiday-0.jpg")
    job.get_by_role("button", name="Side by side").click()
    expect(job.locator("figure.compare")).to_have_class(re.compile(r"\bside\b"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "batch.png"))


def test_reload_keeps_the_job_list_and_delete_removes_it(page, web_server):
    open_page(page, web_server)
    pick(page, SMALL)
    add_step(page, "stats")
    page.get_by_role("button", name="Process 1 image").click()
    expect(card(page, "small.png")).to_have_attribute("data-status", "finished")
    [job_id] = job_ids(page)

    page.reload()
    job = card(page, "small.png")
    expect(job).to_have_attribute("data-status", "finished")
    expect(job.locator("img.after")).to_have_js_property("naturalWidth", 120)
    expect(job.locator(".job-steps")).to_have_text("stats")
    expect(job.locator("svg.histogram path")).to_have_count(3)  # R, G and B
    expect(job.locator(".channel-table tbody tr")).to_have_count(3)

    job.get_by_role("button", name="Delete the job for small.png and its result from the server").click()
    expect(job).to_have_count(0)
    with pytest.raises(urllib.error.HTTPError) as gone:
        api_get(f"{web_server}/api/v1/jobs/{job_id}")
    gone.value.close()
    assert gone.value.code == 404
    page.reload()
    expect(page.locator("#no-jobs")).to_be_visible()
    expect(page.locator(".job")).to_have_count(0)


def test_cancel_a_queued_job(page, held_server):
    open_page(page, held_server)
    pick(page, SMALL)
    page.get_by_role("button", name="Process 1 image").click()
    job = card(page, "small.png")
    expect(job).to_have_attribute("data-status", "queued")
    expect(job.locator(".status-text")).to_contain_text("Queued")

    job.get_by_role("button", name="Cancel the job for small.png").click()
    expect(job).to_have_attribute("data-status", "canceled")
    expect(job.locator(".job-error")).to_have_text("The job was canceled.")
    [job_id] = job_ids(page)
    assert api_get(f"{held_server}/api/v1/jobs/{job_id}")["status"] == "canceled"


# ---------------------------------------------------------------- errors


def test_non_image_is_refused_next_to_its_file_and_names_stay_text(page, web_server):
    open_page(page, web_server)
    hostile = '<img src=x onerror="document.title=\'pwned\'">notes.txt'
    pick(page, (hostile, b"just some words\n", "text/plain"))
    expect(page.locator(".tray-name")).to_have_text(hostile)
    expect(page.locator(".tray-note")).to_contain_text("may not be an image")
    page.get_by_role("button", name="Process 1 image").click()

    job = card(page, "notes.txt")
    expect(job).to_have_attribute("data-status", "rejected")
    expect(job.locator(".job-name")).to_have_text(hostile)
    expect(job.locator(".job-error")).to_contain_text("not an image of an accepted type")
    assert page.title() != "pwned" and page.locator("img[src='x']").count() == 0

    pick(page, SMALL)  # the page goes on working
    page.get_by_role("button", name="Process 1 image").click()
    expect(card(page, "small.png")).to_have_attribute("data-status", "finished")


def test_bad_parameters_are_flagged_before_and_after_submitting(page, web_server):
    open_page(page, web_server)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    pick(page, SMALL)
    add_step(page, "resize")
    width = page.get_by_role("group", name="Step 1: resize").get_by_label("width")
    width.fill("0")
    expect(width).to_have_attribute("aria-invalid", "true")
    expect(width).to_have_accessible_description(re.compile("width must be an integer from 1 to 16384"))
    page.get_by_label("Quality (1–100)").fill("150")
    page.get_by_role("button", name="Process 1 image").click()
    expect(page.locator("#submit-error")).to_contain_text("need fixing")
    expect(page.locator("#quality-error")).to_contain_text("from 1 to 100")
    assert posts == []

    # The server's own checks (here: resize needs a width or a height) land on the step they concern.
    width.fill("")
    page.get_by_label("Quality (1–100)").fill("")
    page.get_by_role("button", name="Process 1 image").click()
    expect(page.locator(".step-error")).to_contain_text("give width, height or both")
    expect(page.locator(".tray-item")).to_have_count(1)  # the image waits for a fixed pipeline
    expect(page.locator(".job")).to_have_count(0)

    width.fill("60")
    page.get_by_role("button", name="Process 1 image").click()
    expect(card(page, "small.png")).to_have_attribute("data-status", "finished")
    expect(card(page, "small.png").locator("img.after")).to_have_js_property("naturalWidth", 60)


def test_server_down_is_reported_and_the_page_recovers(page, web_server):
    open_page(page, web_server)
    page.route("**/api/v1/jobs", lambda route: route.abort())
    pick(page, SMALL, ("second.png", make_image(size=(50, 40)), "image/png"))
    page.get_by_role("button", name="Process 2 images").click()
    job = card(page, "small.png")
    expect(job).to_have_attribute("data-status", "rejected")
    expect(job.locator(".job-error")).to_contain_text("cannot be reached")
    expect(page.locator(".tray-name")).to_have_text(["second.png"])  # not sent: still waiting

    page.unroute("**/api/v1/jobs")
    job.get_by_role("button", name="Put small.png back into the images to process").click()
    page.get_by_role("button", name="Process 2 images").click()
    expect(page.locator('.job[data-status="finished"]')).to_have_count(2)


# ---------------------------------------------------------------- built from the catalogue

def fake_op(name, family, *params, analysis=False):
    return {"name": name, "family": family, "description": f"{name}.", "analysis": analysis, "params": list(params)}


def fake_param(name, kind, required=False, **extra):
    return {"name": name, "type": kind, "description": f"{name}.", "required": required, **extra}


FAKE_CATALOGUE = {
    "max_steps": 5,
    "formats": ["png", "jpeg", "webp"],
    "ops": [
        fake_op("resize", "geometry", fake_param("width", "int", minimum=1, maximum=4096),
                fake_param("height", "int", minimum=1, maximum=4096),
                fake_param("fit", "choice", default="inside", choices=["inside", "cover"])),
        fake_op("grayscale", "tone"),
        fake_op("edges", "filters"),
        fake_op("invert", "tone"),
        fake_op("quantize", "tone", fake_param("colors", "int", required=True, minimum=2, maximum=256)),
        fake_op("vignette", "tone", fake_param("strength", "float", default=0.5, minimum=0, maximum=1),
                fake_param("round", "bool", default=True), fake_param("tint", "color", default="#102030")),
        fake_op("stats", "analysis", analysis=True),
    ],
    "presets": [
        {"name": "thumbnail-512", "title": "Thumbnail 512", "description": "Shrink.",
         "ops": [{"op": "resize", "width": 512, "height": 512, "fit": "inside"}]},
        {"name": "pencil-sketch", "title": "Pencil sketch", "description": "Outlines.",
         "ops": [{"op": "grayscale"}, {"op": "edges"}, {"op": "invert"}]},
        {"name": "poster-8", "title": "8-colour poster", "description": "Eight colours.",
         "ops": [{"op": "quantize", "colors": 8}]},
        {"name": "analyse", "title": "Analyse", "description": "Palette and hashes.",
         "ops": [{"op": "palette"}, {"op": "hash"}, {"op": "stats"}]},
        {"name": "too-bright", "title": "Too bright", "description": "A value out of range.",
         "ops": [{"op": "vignette", "strength": 2}]},
    ],
}


def test_form_and_presets_follow_the_catalogue(page, web_server):
    page.route("**/api/v1/ops", lambda route: route.fulfill(json=FAKE_CATALOGUE))
    open_page(page, web_server)
    groups = page.locator("#op-select optgroup")
    assert groups.evaluate_all("gs => gs.map(g => g.label)") == ["geometry", "tone", "filters", "analysis"]
    # The service's presets show when its catalogue can run them: "Analyse" needs palette and hash,
    # which this catalogue lacks, and "Too bright" has a value out of range.
    presets = page.locator("#presets button.preset")
    expect(presets).to_have_text(["Thumbnail 512", "Pencil sketch", "8-colour poster"])
    page.get_by_role("button", name="Pencil sketch").click()
    expect(page.locator(".step")).to_have_count(3)
    assert page.locator(".step").evaluate_all("s => s.map(e => e.dataset.op)") == ["grayscale", "edges", "invert"]
    page.get_by_role("button", name="8-colour poster").click()
    expect(page.get_by_role("group", name="Step 1: quantize").get_by_label("colors")).to_have_value("8")

    add_step(page, "vignette")
    step = page.get_by_role("group", name="Step 2: vignette")
    strength = step.get_by_label("strength")
    expect(strength).to_have_attribute("type", "number")
    expect(strength).to_have_attribute("min", "0")
    expect(strength).to_have_attribute("max", "1")
    expect(strength).to_have_value("0.5")
    expect(step.get_by_label("round")).to_be_checked()
    expect(step.get_by_label("tint", exact=True)).to_have_value("#102030")
    expect(step.get_by_label("tint: colour picker")).to_have_attribute("type", "color")
    strength.fill("1.5")
    expect(strength).to_have_attribute("aria-invalid", "true")

    # Reorder and remove with the step buttons.
    page.get_by_role("button", name="Move step 2 (vignette) up").click()
    assert page.locator(".step").evaluate_all("s => s.map(e => e.dataset.op)") == ["vignette", "quantize"]
    expect(page.get_by_role("button", name="Move step 1 (vignette) down")).to_be_focused()
    page.get_by_role("button", name="Remove step 1 (vignette)").click()
    assert page.locator(".step").evaluate_all("s => s.map(e => e.dataset.op)") == ["quantize"]

    for _ in range(4):
        add_step(page, "grayscale")
    expect(page.get_by_role("button", name="Add step")).to_be_disabled()  # max_steps is 5


def test_presets_only_use_ops_the_service_has(page, web_server):
    open_page(page, web_server)
    names = {op["name"] for op in api_get(f"{web_server}/api/v1/ops")["ops"]}
    presets = page.locator("#presets button.preset")
    expect(presets.first).to_be_visible()
    for index in range(presets.count()):
        presets.nth(index).click()
        used = page.locator(".step").evaluate_all("s => s.map(e => e.dataset.op)")
        assert used and set(used) <= names, (presets.nth(index).inner_text(), used)


def test_analyse_preset_draws_the_real_outputs(page, web_server):
    open_page(page, web_server)
    preset = page.get_by_role("button", name="Analyse")
    if not preset.count():
        pytest.skip("this catalogue lacks the palette, hash or stats op")
    pick(page, ("scene.jpg", make_photo((400, 300)), "image/jpeg"))
    preset.click()
    page.get_by_role("button", name="Process 1 image").click()
    job = card(page, "scene.jpg")
    expect(job).to_have_attribute("data-status", "finished")
    expect(job.locator('[data-op="palette"] .palette-part').first).to_be_visible()
    shares = job.locator('[data-op="palette"] .palette-legend li .share').all_text_contents()
    assert shares and all(share.endswith("%") for share in shares)
    expect(job.locator('[data-op="hash"] code.hash').first).to_be_visible()
    expect(job.locator('[data-op="stats"] svg.histogram path')).to_have_count(3)


def test_analysis_outputs_are_drawn(page, web_server):
    """Palettes as swatches, hashes in monospace, histograms as charts; anything else as values and raw JSON."""
    job_id = "ab" * 16
    result = make_image(size=(80, 60))
    histogram = [i % 17 for i in range(256)]
    job = {
        "id": job_id, "status": "finished", "progress": 1.0, "ops": [{"op": "palette"}, {"op": "hash"}],
        "format": "png", "input": {"format": "PNG", "width": 80, "height": 60, "bytes": 999, "filename": "chart.png"},
        "result": {"width": 80, "height": 60, "format": "png", "media_type": "image/png", "bytes": len(result),
                   "analysis": [
                       {"step": 1, "op": "palette", "output": {"colors": [
                           {"color": "#ff0000", "share": 0.625, "pixels": 3000},
                           {"color": "#00ff00", "share": 0.25, "pixels": 1200},
                           {"color": "#0000ff", "share": 0.125, "pixels": 600}], "pixels": 4800}},
                       {"step": 2, "op": "hash", "output": {"hash_size": 8, "ahash": "f0e1d2c3b4a59687",
                                                           "dhash": "0011223344556677", "phash": "8"}},
                       {"step": 3, "op": "stats", "output": {"channels": {
                           "R": {"mean": 1.5, "histogram": histogram}, "G": {"mean": 2, "histogram": histogram}},
                           "entropy": 7.25}},
                       {"step": 4, "op": "mystery", "output": {"nested": [{"a": 1}], "note": "<b>text</b>"}},
                   ]},
        "links": {"self": f"/api/v1/jobs/{job_id}", "result": f"/api/v1/jobs/{job_id}/result"},
    }
    page.route(f"**/api/v1/jobs/{job_id}", lambda route: route.fulfill(json=job))
    page.route(f"**/api/v1/jobs/{job_id}/result", lambda route: route.fulfill(body=result, content_type="image/png"))
    open_page(page, web_server)
    page.evaluate("(id) => localStorage.setItem('imgjobs.recent', JSON.stringify([{id, name: 'chart.png'}]))", job_id)
    page.reload()

    shown = card(page, "chart.png")
    expect(shown).to_have_attribute("data-status", "finished")
    palette = shown.locator('[data-op="palette"]')
    expect(palette.locator(".palette-part")).to_have_count(3)
    expect(palette.locator(".palette-legend li")).to_have_text(["#ff0000 63%", "#00ff00 25%", "#0000ff 13%"])
    grow = palette.locator(".palette-part").evaluate_all("parts => parts.map(p => Number(p.style.flexGrow))")
    assert grow == [0.625, 0.25, 0.125]
    hashes = shown.locator('[data-op="hash"] code.hash')
    expect(hashes).to_have_text(["f0e1d2c3b4a59687", "0011223344556677", "8"])
    assert hashes.first.evaluate("e => getComputedStyle(e).fontFamily").lower().find("mono") >= 0
    stats = shown.locator('[data-op="stats"]')
    expect(stats.locator("svg.histogram path")).to_have_count(2)
    expect(stats.locator(".channel-table tbody tr")).to_have_count(2)
    mystery = shown.locator('[data-op="mystery"]')
    expect(mystery.locator("dd").last).to_have_text("<b>text</b>")
    expect(mystery.locator("b")).to_have_count(0)
    raw = json.loads(mystery.locator("details.raw pre").text_content())
    assert raw == job["result"]["analysis"][3]["output"]


# ---------------------------------------------------------------- how it is built


def test_phone_width_and_keyboard_only(page, web_server):
    page.set_viewport_size({"width": 360, "height": 740})
    open_page(page, web_server)
    page.get_by_label("Op to add").focus()
    page.keyboard.type("resize")  # a closed select picks the option typed
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Add step")).to_be_focused()
    page.keyboard.press("Enter")
    step = page.locator(".step").first
    expect(step.locator("input").first).to_be_focused()  # focus moves into the new step
    page.keyboard.type("300")
    assert page.locator(".step").first.get_attribute("data-op") == "resize"
    pick(page, PHOTO)
    page.get_by_role("button", name="Process 1 image").focus()
    page.keyboard.press("Enter")
    expect(card(page, "photo.jpg")).to_have_attribute("data-status", "finished")
    expect(card(page, "photo.jpg").locator("img.after")).to_have_js_property("naturalWidth", 300)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
        .filter(e => !e.labels?.length && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map(e => e.outerHTML)""")
    assert unlabelled == []


def test_security_headers_and_no_inline_code(web_server):
    for path in ("/", "/static/js/app.js", "/api/v1/ops"):
        with urllib.request.urlopen(web_server + path, timeout=5) as response:
            policy = response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy and "http" not in policy
    with urllib.request.urlopen(web_server + "/", timeout=5) as response:
        html = response.read().decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in tag for tag in scripts)
    assert not re.search(r"<style|\sstyle=|\son\w+=", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # every asset from this origin
    for source in STATIC.rglob("*.js"):
        code = source.read_text()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", code), source
        assert not re.search(r"(fetch|import)\([\"'`]https?:", code), source
