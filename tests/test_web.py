"""The HTTP API against a real ``kirinuki serve`` process, and the page in a real browser."""

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kirinuki.samples import sample_paths
from conftest import SIGNBOARD_POINT, meadow_with_a_signboard

pytest.importorskip("fastapi")
from kirinuki.web.app import parse_multipart, safe_download_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium():
    """Skip without Debian's Chromium, except in CI, where the browser tests must run."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("KIRINUKI_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing; CI installs Debian's chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")


def launch_chromium(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model, *flags):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "kirinuki", "serve", "--port", str(self.port),
                                      "--model", str(model), *map(str, flags)],
                                     stderr=subprocess.PIPE, text=True)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read()
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tiny_onnx):
    s = Server(tiny_onnx, "--max-upload-mb", "1", "--max-pixels", "0.5")
    yield s
    s.stop()


def post(url, data: bytes, filename="a.png", **fields):
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
             for k, v in fields.items()]
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/api/cutout", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def png_bytes(w=60, h=40, mode="RGB"):
    buf = io.BytesIO()
    arr = np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(buf, "PNG")
    return buf.getvalue()


def flat_png(w, h):
    """A picture with many pixels in a small file."""
    buf = io.BytesIO()
    y, x = np.mgrid[0:h, 0:w]
    Image.fromarray(((x + y) % 256).astype(np.uint8)).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def test_healthz_and_docs(server):
    health = json.loads(urllib.request.urlopen(server.url + "/healthz").read())
    assert health["status"] == "ok" and health["model"] == "tiny" and health["work_size"] == 64
    docs = urllib.request.urlopen(server.url + "/docs").read().decode()
    assert "swagger" in docs.lower()
    # Served by kirinuki itself, so that the page works offline: no script or style from elsewhere.
    assert not re.findall(r"(?:src|href)=['\"]?(?:https?:)?//", docs), docs
    for asset in re.findall(r"(?:src|href)=['\"](/docs-assets/[^'\"]+)", docs):
        assert urllib.request.urlopen(server.url + asset).status == 200
    assert "/docs-assets/swagger-ui-bundle.js" in docs
    spec = json.loads(urllib.request.urlopen(server.url + "/openapi.json").read())
    form = spec["paths"]["/api/cutout"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"file", "mask", "background", "trim", "format", "keep", "drop"} <= set(form["properties"])
    assert form["properties"]["format"]["enum"] == ["png", "webp", "gif"]  # what the server takes
    page = urllib.request.urlopen(server.url + "/").read().decode()
    assert "<title>kirinuki" in page and "http" not in page.split("<body>")[1].replace("aria", "")


def test_cutout_answers_an_rgba_png(server):
    status, headers, body = post(server.url, png_bytes(), filename="chara.png")
    assert status == 200 and headers["content-type"] == "image/png"
    assert headers["content-disposition"].startswith('attachment; filename="chara.png"')
    im = Image.open(io.BytesIO(body))
    assert im.mode == "RGBA" and im.size == (60, 40)


@pytest.mark.parametrize("fields,mode,ctype", [
    ({"mask": "true"}, "L", "image/png"),
    ({"background": "#102030"}, "RGB", "image/png"),
    ({"format": "webp"}, "RGBA", "image/webp"),
])
def test_options(server, fields, mode, ctype):
    status, headers, body = post(server.url, png_bytes(), **fields)
    assert status == 200 and headers["content-type"] == ctype
    assert Image.open(io.BytesIO(body)).mode == mode


def test_trim_crops_to_content(server):
    arr = np.zeros((40, 60, 4), np.uint8)
    arr[10:20, 5:25] = (255, 0, 0, 255)  # an input with a real alpha: kept, then trimmed
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    status, _, body = post(server.url, buf.getvalue(), trim="true")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (20, 10)


def test_limits_answer_clear_json_errors(server):
    big = os.urandom(1024 * 1024 + 100_000)
    for data, expected, text in [
        (big, 413, "over the limit of 1 MB"),
        (flat_png(1000, 600), 422, "over the limit of 0.5 MP"),
        (b"this is not a picture", 415, "not an image"),
        (b"", 415, "empty file"),
        (png_bytes()[:200], 415, "truncated or corrupt"),
    ]:
        status, headers, body = post(server.url, data)
        assert status == expected, (expected, body)
        assert headers["content-type"] == "application/json"
        assert text in json.loads(body)["error"]
    status, _, body = post(server.url, png_bytes(), background="tomato")
    assert status == 422 and "#rrggbb" in json.loads(body)["error"]
    status, _, body = post(server.url, png_bytes(), format="bmp")
    assert status == 422 and "png, webp or gif" in json.loads(body)["error"]


def test_keep_and_drop_points(server):
    white = io.BytesIO()
    Image.new("RGB", (60, 40), "white").save(white, "PNG")
    status, _, body = post(server.url, white.getvalue(), keep="5,5", drop="")
    assert status == 200 and np.asarray(Image.open(io.BytesIO(body)).getchannel("A")).min() == 255
    status, _, body = post(server.url, white.getvalue(), keep="5,5", drop="50,30")
    assert status == 200 and np.asarray(Image.open(io.BytesIO(body)).getchannel("A")).max() == 0
    for fields, text in [({"keep": "5;5"}, "not a point"), ({"drop": "a,b"}, "not a point"),
                         ({"keep": ";".join(["1,1"] * 20), "drop": ";".join(["2,2"] * 13)}, "at most 32"),
                         ({"keep": "60,5"}, "outside the 60x40 picture")]:
        status, headers, body = post(server.url, white.getvalue(), **fields)
        assert status == 422 and text in json.loads(body)["error"], (fields, body)


def test_download_names_are_safe():
    assert safe_download_name("../../etc/passwd.jpg", ".png") == ("passwd.png", "passwd.png")
    assert safe_download_name("C:\\Users\\x\\chara 1.jpeg", ".png") == ("chara_1.png", "chara 1.png")
    assert safe_download_name("キャラ.jpg", ".webp") == ("cutout.webp", "キャラ.webp")
    assert safe_download_name(".hidden", ".png")[0] == "hidden.png"
    assert safe_download_name(None, ".png") == ("cutout.png", "cutout.png")
    assert safe_download_name('a";b\r\n.png', ".png")[0] == "a__b.png"


def test_multipart_parser_keeps_binary_data_exact():
    data = bytes(range(256)) * 10 + b"\r\n--notboundary\r\n"
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.bin\"\r\n\r\n" + data
            + b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"mask\"\r\n\r\ntrue\r\n--XyZ--\r\n")
    fields = parse_multipart(body, "multipart/form-data; boundary=XyZ")
    assert fields["file"] == ("p.bin", data) and fields["mask"] == (None, b"true")


def test_busy_server_answers_503_with_retry_after(tiny_onnx):
    s = Server(tiny_onnx, "--workers", "1", "--queue", "0")
    try:
        big = flat_png(3000, 3000)
        results = []
        threads = [threading.Thread(target=lambda: results.append(post(s.url, big))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r[0] for r in results)
        assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}
        busy = next(r for r in results if r[0] == 503)
        assert busy[1]["retry-after"] == "2" and "busy" in json.loads(busy[2])["error"]
        assert post(s.url, png_bytes())[0] == 200  # and it recovers
    finally:
        s.stop()


def test_load_script_runs_with_small_numbers(tiny_onnx):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load_test.py"), "--requests", "16",
                          "--concurrency", "4", "--model", str(tiny_onnx), "--queue", "2", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert sum(report["statuses"].values()) == 16 and set(report["statuses"]) <= {"200", "503"}
    assert report["statuses"].get("200", 0) >= 1 and report["server_peak_rss_mb"] > 0


@pytest.mark.browser
def test_page_in_a_real_browser(server, tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    sample = next(p for p in sample_paths() if "white" in p.name)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(server.url + "/")
            bad = tmp_path / "notes.png"
            bad.write_text("not a picture")
            page.set_input_files("#files", [str(sample), str(bad)])
            page.wait_for_selector(".card[data-state=done]", timeout=60_000)
            page.wait_for_selector(".card[data-state=error]", timeout=60_000)
            assert "not an image" in page.inner_text(".card[data-state=error] .error")
            assert page.inner_text("#summary").startswith("1 of 2 done")
            with page.expect_download() as dl:
                page.click(".card[data-state=done] .download")
            saved = tmp_path / dl.value.suggested_filename
            dl.value.save_as(saved)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
            page.set_viewport_size({"width": 375, "height": 800})
            page.screenshot(path=str(ARTIFACTS / "web-page-phone.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        finally:
            browser.close()
    assert saved.name == "sylvie-on-white.png"
    got = Image.open(saved)
    assert got.mode == "RGBA"
    _, _, api = post(server.url, sample.read_bytes(), filename=sample.name)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(Image.open(io.BytesIO(api))))


@pytest.mark.browser
def test_page_fixes_a_region_with_a_click_and_undoes_it(tmp_path):
    """The meadow sample with the bundled model: a click in drop mode on the kept patch of trees
    makes the downloaded cutout transparent there; undo brings the first cutout back."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    sample = tmp_path / "meadow-with-a-signboard.png"
    Image.fromarray(meadow_with_a_signboard()).save(sample)
    width, height = Image.open(sample).size
    x, y = SIGNBOARD_POINT
    server = Server("default")

    def download(page, name):
        with page.expect_download() as dl:
            page.click(".card .download")
        path = tmp_path / name
        dl.value.save_as(path)
        return np.asarray(Image.open(path).getchannel("A"))

    def wait_for_new_cutout(page, old_href):
        page.wait_for_function("(old) => { const c = document.querySelector('.card');"
                               " return c.dataset.state === 'done' && c.querySelector('.download').href !== old; }",
                               arg=old_href, timeout=60_000)

    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 700, "height": 1400})
                page.goto(server.url + "/")
                page.set_input_files("#files", [str(sample)])
                page.wait_for_selector(".card[data-state=done]", timeout=60_000)
                first = download(page, "first.png")
                assert first[y, x] > 128  # the model keeps the signboard
                page.check(".card .mode[value=drop]")
                box = page.locator(".card .after").bounding_box()
                href = page.get_attribute(".card .download", "href")
                page.mouse.click(box["x"] + ((x + 0.5) / width) * box["width"],
                                 box["y"] + ((y + 0.5) / height) * box["height"])
                wait_for_new_cutout(page, href)
                fixed = download(page, "fixed.png")
                assert fixed[y, x] == 0
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "web-page-fix.png"), full_page=True)
                href = page.get_attribute(".card .download", "href")
                page.click(".card .undo")
                wait_for_new_cutout(page, href)
                undone = download(page, "undone.png")
                np.testing.assert_array_equal(undone, first)
            finally:
                browser.close()
    finally:
        server.stop()


def test_an_animated_upload_gets_an_animated_answer(server, tmp_path):
    from test_animation import DURATIONS, frames_of, moving_figure

    moving_figure(tmp_path / "sticker.png", "PNG")
    status, headers, body = post(server.url, (tmp_path / "sticker.png").read_bytes(), filename="sticker.png")
    assert status == 200 and headers["content-type"] == "image/png"
    (tmp_path / "answer.png").write_bytes(body)
    frames, durations, loop = frames_of(tmp_path / "answer.png")
    assert len(frames) == 6 and durations == DURATIONS and loop == 2
    status, headers, body = post(server.url, (tmp_path / "sticker.png").read_bytes(), format="webp")
    assert status == 200 and Image.open(io.BytesIO(body)).n_frames == 6


@pytest.mark.browser
def test_page_answers_an_animated_upload_with_an_animation(server, tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright
    from test_animation import DURATIONS, frames_of, moving_figure

    moving_figure(tmp_path / "sticker.png", "PNG")
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.set_input_files("#files", [str(tmp_path / "sticker.png")])
            page.wait_for_selector(".card[data-state=done]", timeout=60_000)
            with page.expect_download() as dl:
                page.click(".card .download")
            saved = tmp_path / "downloaded.png"
            dl.value.save_as(saved)
            # A click on an animation is refused by the server: the card says why and keeps
            # the animated cutout, its download and its state.
            href = page.get_attribute(".card .download", "href")
            page.check(".card .mode[value=drop]")
            box = page.locator(".card .after").bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function("() => document.querySelector('.card .error').textContent !== ''",
                                   timeout=60_000)
            assert "still pictures" in page.text_content(".card .error")
            assert page.get_attribute(".card", "data-state") == "done"
            assert page.get_attribute(".card .download", "href") == href and page.is_visible(".card .download")
            assert page.is_disabled(".card .undo")  # the refused click is not there to undo
            with page.expect_download() as dl:
                page.click(".card .download")
            again = tmp_path / "again.png"
            dl.value.save_as(again)
            assert again.read_bytes() == saved.read_bytes()
        finally:
            browser.close()
    frames, durations, _ = frames_of(saved)
    assert len(frames) == 6 and durations == DURATIONS


def test_the_last_click_on_a_region_decides_it(server):
    white = io.BytesIO()
    Image.new("RGB", (60, 40), "white").save(white, "PNG")  # one white region: every click hits it
    for edits, alpha in (("drop:5,5;keep:5,5", 255), ("keep:5,5;drop:5,5", 0), ("keep:5,5;drop:50,30;keep:9,9", 255)):
        status, _, body = post(server.url, white.getvalue(), edits=edits)
        assert status == 200, body
        assert set(np.unique(np.asarray(Image.open(io.BytesIO(body)).getchannel("A")))) == {alpha}, edits
    for edits in ("keep 5,5", "grab:5,5", "keep:5"):
        status, _, body = post(server.url, white.getvalue(), edits=edits)
        error = json.loads(body)["error"]
        assert status == 422 and ("keep:x,y" in error or "not a point" in error), (edits, error)


def raw_request(port: int, head: bytes, body: bytes, timeout: float = 10.0) -> bytes:
    """Send ``head`` and ``body`` on a fresh connection and read until the server closes it
    (or ``timeout``); the bytes received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except (TimeoutError, socket.timeout, ConnectionResetError):
            pass
    return received


def test_a_huge_declared_upload_gets_413_at_once_and_a_closed_connection(server):
    head = (b"POST /api/cutout HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 999999999999\r\n\r\n")
    answer = raw_request(server.port, head, b"0123456789", timeout=10)  # a server that waits gives nothing
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"connection: close" in answer.lower() and b"over the limit of 1 MB" in answer


def test_a_form_of_many_tiny_parts_is_refused_before_it_is_parsed(server):
    boundary = "p"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n" * 20000
            + f"--{boundary}--\r\n").encode()
    assert len(body) < 1024 * 1024  # under the upload limit: the part count is what refuses it
    req = urllib.request.Request(server.url + "/api/cutout", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=60)
    assert refused.value.code == 400 and "more than 16 parts" in json.loads(refused.value.read())["error"]
    assert json.loads(urllib.request.urlopen(server.url + "/healthz", timeout=5).read())["status"] == "ok"


def test_an_oversized_body_without_a_length_gets_413(server):
    chunk = os.urandom(256 * 1024)
    head = (b"POST /api/cutout HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(12)) + b"0\r\n\r\n"  # 3 MB
    answer = raw_request(server.port, head, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_the_frameworks_own_errors_have_the_documented_shape(server):
    for method, path, status in (("GET", "/api/cutout", 405), ("GET", "/no/such/page", 404)):
        req = urllib.request.Request(server.url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(req, timeout=10)
        body = json.loads(answer.value.read())
        assert answer.value.code == status and set(body) == {"error", "status"} and body["status"] == status
        assert isinstance(body["error"], str) and body["error"]


def test_keep_on_an_animated_upload_is_refused_in_the_apis_words(server, tmp_path):
    from test_animation import moving_figure

    moving_figure(tmp_path / "sticker.png", "PNG")
    status, _, body = post(server.url, (tmp_path / "sticker.png").read_bytes(), keep="5,5")
    error = json.loads(body)["error"]
    assert status == 422 and "keep and drop apply to still pictures" in error and "--" not in error


#: What the API fuzzing holds the server to: never a 5xx, and every answer as the OpenAPI
#: description says (status, content type, body schema, headers). (Schemathesis's data
#: acceptance checks are left out: the description cannot say that ``file`` must be a
#: picture, and it sends an empty list as no field at all, which the server cannot tell apart.)
API_CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
              "response_schema_conformance,response_headers_conformance")


def test_the_api_fuzzed_from_its_own_description_never_errs_and_matches_it(server, tmp_path):
    st = Path(sys.executable).with_name("st")
    r = subprocess.run([str(st), "run", f"{server.url}/openapi.json", "--checks", API_CHECKS, "-n", "60",
                        "--seed", "11", "--request-timeout", "60", "--report", "junit",
                        "--report-dir", str(tmp_path)], capture_output=True, text=True, timeout=600,
                       cwd=tmp_path)  # its cache folder goes there, not into the project
    assert r.returncode == 0, r.stdout[-4000:]
    assert re.search(r"\d+ generated, \d+ passed", r.stdout), r.stdout[-2000:]


@pytest.mark.slow
def test_a_short_soak_of_mixed_clients_gets_no_5xx_and_a_quick_healthz(tiny_onnx):
    """benchmarks/soak.py for 15 s (the 10-minute run's figures are in docs/benchmarks.md):
    good pictures, clicks, animations, bad files and slow clients at once."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "15", "--requests", "2000",
                        "--clients", "4", "--model", str(tiny_onnx)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert set(report["answers"]) <= {"2xx", "4xx"} and report["requests"] >= 40
    assert all(set(kinds) == {"415"} for name, kinds in report["by_kind"].items()
               if name in ("not a picture", "cut short", "empty"))
    assert report["by_kind"]["slow client"] and set(report["by_kind"]["slow client"]) == {"200"}
    assert report["healthz_max_s"] <= 1.0


def test_a_small_upload_declaring_much_work_is_refused_by_the_request_budget(tiny_onnx):
    """A GIF of a few hundred bytes whose header declares 24 frames of 2000x2000 (96 MP): the
    server's budget per request (25 MP by default) refuses it before any frame is decoded."""
    from PIL import ImageDraw

    frames = [Image.new("RGB", (8, 8), "white") for _ in range(24)]
    for k, frame in enumerate(frames):
        ImageDraw.Draw(frame).point((k % 8, k // 8), fill="red")
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    data = bytearray(buf.getvalue())
    data[6:10] = (2000).to_bytes(2, "little") * 2  # the logical screen: 2000x2000
    assert len(data) < 2000
    server = Server(tiny_onnx)
    try:
        status, _, body = post(server.url, bytes(data), filename="tiny.gif")
    finally:
        server.stop()
    assert status == 422 and "over the limit of 25 MP" in json.loads(body)["error"], body
