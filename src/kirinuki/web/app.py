"""The HTTP API and page: ``kirinuki serve`` (FastAPI + Uvicorn, the ``web`` extra).

Routes: ``GET /`` (the page), ``POST /api/cutout`` (multipart field ``file``; optional form
fields ``mask``, ``background``, ``trim``, ``format``), ``GET /healthz``, ``GET /docs``.

Limits, each answered with a JSON body ``{"error": ..., "status": ...}``:
upload over ``max_upload_mb`` -> 413; a picture (an animation: all its frames together) over
``max_pixels``, 25 MP by default, -> 422; not a
picture or unreadable -> 415; more requests in flight than ``workers + queue`` -> 503 with
``Retry-After``. The model is loaded once; inference runs in worker threads, at most
``workers`` at a time. Uploads are read into memory (bounded by the limits above) and
nothing is written to disk; nothing a client sends is used as a path.
"""

from __future__ import annotations

import ctypes
import io
import re
import socket
import unicodedata
from dataclasses import dataclass
from email.message import Message
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import anyio
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import InputError, InputKind
from ..imaging import open_image
from ..limits import SERVE_MAX_PIXELS
from ..animation import encode_animation, read_animation
from ..pipeline import CutoutOptions, check_encodable, encode, parse_colour, render, render_animation
from ..inference import Matter, check_points
from ..regions import MAX_POINTS, ordered_edits, parse_edits, parse_points

__all__ = ["ServeSettings", "create_app", "safe_download_name", "parse_multipart"]

STATUS_FOR_KIND = {InputKind.EMPTY: 415, InputKind.UNSUPPORTED: 415, InputKind.CORRUPT: 415,
                   InputKind.TOO_LARGE: 422, InputKind.BAD_OPTION: 422}
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}
#: Every error answer: ``{"error": one line, "status": the HTTP status}``.
ERROR_SCHEMA = {"type": "object", "required": ["error", "status"],
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}



@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1              # inferences at a time
    queue: int = 8                # requests allowed to wait for a worker
    max_upload_mb: float = 25.0
    max_pixels: int = SERVE_MAX_PIXELS  # a picture's pixels, or an animation's over all its frames
    retry_after_s: int = 2


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def safe_download_name(upload_name: str | None, suffix: str) -> tuple[str, str]:
    """(ASCII file name, UTF-8 file name) for Content-Disposition, from an upload's name.

    Only the last path component's stem is kept; anything but letters, digits, ``.-_`` and
    spaces is replaced; never empty, never hidden, at most 100 characters.
    """
    base = re.split(r"[\\/]", upload_name or "")[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = unicodedata.normalize("NFC", stem)
    uni = "".join(c if (c.isalnum() or c in "-_. ") else "_" for c in stem).strip(" .")[:100] or "cutout"
    ascii_ = re.sub(r"[^A-Za-z0-9._-]", "_", unicodedata.normalize("NFKD", uni).encode("ascii", "ignore").decode())
    ascii_ = ascii_.strip("._")[:100] or "cutout"
    return ascii_ + suffix, uni + suffix


#: The most parts a form may have: the API's fields (file, mask, background, trim, format,
#: keep, drop) with room to spare. A body of hundreds of thousands of tiny parts is refused
#: by one count of its boundary, before any part is parsed.
MAX_PARTS = 16


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """multipart/form-data -> {field name: (file name or None, bytes)}, in memory; at most
    ``MAX_PARTS`` parts."""
    msg = Message()
    msg["content-type"] = content_type
    if msg.get_content_type() != "multipart/form-data" or not msg.get_param("boundary"):
        raise HTTPProblem(400, "expected a multipart/form-data body with a 'file' field")
    boundary = b"--" + str(msg.get_param("boundary")).encode("latin-1")
    if body.count(boundary) > MAX_PARTS + 1:
        raise HTTPProblem(400, f"more than {MAX_PARTS} parts in the form")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise HTTPProblem(400, "malformed multipart body")
        headers = Message()
        for line in head.decode("utf-8", "replace").strip().split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        if name in fields:
            raise HTTPProblem(422, f"the field {name!r} is given more than once")
        filename = headers.get_filename()
        fields[name] = (filename, data[:-2] if data.endswith(b"\r\n") else data)
    return fields


def _flag(fields: dict, name: str) -> bool:
    """A boolean form field as the API describes it: ``true`` or ``false`` (absent: false)."""
    if name not in fields:
        return False
    value = fields[name][1].decode("utf-8", "replace")
    if value in ("true", "false"):
        return value == "true"
    raise HTTPProblem(422, f"{name} must be true or false")


def _options(fields: dict, settings: ServeSettings) -> CutoutOptions:
    fmt = fields.get("format", (None, b"png"))[1].decode("utf-8", "replace")
    if fmt not in MEDIA_TYPES:
        raise HTTPProblem(422, "format must be png, webp or gif")
    background = None
    if "background" in fields:  # as the API describes it: #rrggbb, nothing else
        bg_text = fields["background"][1].decode("utf-8", "replace")
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", bg_text):
            raise HTTPProblem(422, "background must be a colour as #rrggbb")
        background = parse_colour(bg_text)
    text = {name: fields.get(name, (None, b""))[1].decode("utf-8", "replace") for name in ("keep", "drop", "edits")}
    try:
        points = {name: parse_points(text[name]) for name in ("keep", "drop")}
        edits = ordered_edits(points["keep"], points["drop"], parse_edits(text["edits"]))
    except ValueError as exc:
        raise HTTPProblem(422, f"keep, drop and edits: {exc}") from None
    if len(edits) > MAX_POINTS:
        raise HTTPProblem(422, f"keep, drop and edits: at most {MAX_POINTS} points in all")
    return CutoutOptions(mask=_flag(fields, "mask"), background=background, fmt=fmt,
                         trim=0 if _flag(fields, "trim") else None, max_pixels=settings.max_pixels,
                         edits=tuple(edits))


async def _drain(request: Request, budget: int) -> bool:
    """Read and drop up to ``budget`` more bytes of a refused upload, so that a client still
    sending a body of about the allowed size gets the answer instead of a reset connection.
    Nothing is kept. True when the body was read to its end; False when more was on its way
    (the answer then closes the connection rather than reading it all)."""
    read = 0
    async for chunk in request.stream():
        read += len(chunk)
        if read > budget:
            return False
    return True


#: Sent with an answer given before the request's body was read to its end.
CLOSE = {"Connection": "close"}


class _Gate:
    """Admits at most ``workers + queue`` requests; runs at most ``workers`` at a time."""

    def __init__(self, workers: int, queue: int) -> None:
        self.capacity = workers + queue
        self.limiter = anyio.CapacityLimiter(workers)
        self.admitted = 0

    def try_enter(self) -> bool:
        if self.admitted >= self.capacity:
            return False
        self.admitted += 1
        return True

    def leave(self) -> None:
        self.admitted -= 1


def create_app(matter: Matter, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The ASGI app around one loaded model."""
    app = FastAPI(title="kirinuki", version=__version__, docs_url=None, redoc_url=None,
                  description="Cut out anime illustrations: RGB picture in, RGBA cutout out.")
    gate = _Gate(settings.workers, settings.queue)
    limit = int(settings.max_upload_mb * 1024 * 1024)
    static = Path(str(resources.files("kirinuki.web").joinpath("static")))

    @app.exception_handler(HTTPProblem)
    async def _problem(_: Request, exc: HTTPProblem) -> JSONResponse:
        return JSONResponse({"error": exc.message, "status": exc.status}, exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own answers (404, 405) in the documented error shape."""
        return JSONResponse({"error": str(exc.detail), "status": exc.status_code}, exc.status_code,
                            headers=getattr(exc, "headers", None))

    from swagger_ui_bundle import swagger_ui_path  # the web extra's: the docs page's own files

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="kirinuki API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(static / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/healthz")
    async def healthz() -> dict:
        """The server is up and its model loaded."""
        return {"status": "ok", "version": __version__, "model": matter.info.name,
                "model_version": matter.info.extra.get("version"), "work_size": matter.info.work_size,
                "workers": settings.workers, "queue": settings.queue}

    multipart_doc = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary", "description": "the picture"},
            "mask": {"type": "boolean", "description": "answer the alpha alone (grayscale PNG)"},
            "background": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$",
                           "description": "flatten onto this colour (RGB answer)"},
            "trim": {"type": "boolean", "description": "crop to the content"},
            "format": {"type": "string", "enum": list(MEDIA_TYPES)},
            "keep": {"type": "string", "description": "points x,y;x,y (pixels of a still picture, at most "
                                                      f"{MAX_POINTS} with drop) whose regions are made opaque"},
            "drop": {"type": "string", "description": "points x,y;x,y whose regions are made transparent"},
            "edits": {"type": "string", "description": "clicks keep:x,y;drop:x,y applied in order after keep "
                                                       "and drop: the last click on a region decides it"}}}}}},
        "responses": {"200": {"description": "the cutout",
                              "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                          for t in MEDIA_TYPES.values()}},
                      **{str(code): {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
                         for code, text in ((400, "not a form, or a malformed one"), (413, "upload too large"),
                                            (415, "not a picture"), (422, "too many pixels, or a bad option"),
                                            (500, "the cutout failed"),
                                            (503, "busy: retry after the Retry-After seconds"))}}}

    @app.post("/api/cutout", openapi_extra=multipart_doc, response_class=Response)
    async def api_cutout(request: Request) -> Response:
        """Cut out the uploaded picture; answers the image bytes."""
        too_large = f"upload over the limit of {settings.max_upload_mb:g} MB"
        allowed = limit + 64 * 1024  # the file plus its multipart framing
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > allowed:
            # Answered from the header: a body of up to twice the limit is read and dropped so
            # that the client gets the answer; a larger one is never read, the connection closes.
            drained = int(declared) <= 2 * allowed and await _drain(request, allowed)
            raise HTTPProblem(413, too_large, None if drained else CLOSE)
        if not gate.try_enter():
            drained = await _drain(request, allowed)
            raise HTTPProblem(503, "busy: too many requests waiting, retry shortly",
                              {"Retry-After": str(settings.retry_after_s), **({} if drained else CLOSE)})
        try:
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > allowed:
                    del body
                    drained = await _drain(request, allowed)
                    raise HTTPProblem(413, too_large, None if drained else CLOSE)
            # Parsed off the event loop: /healthz and the other clients are answered meanwhile.
            fields = await anyio.to_thread.run_sync(parse_multipart, bytes(body),
                                                    request.headers.get("content-type", ""))
            del body
            if "file" not in fields:
                raise HTTPProblem(400, "the form has no 'file' field")
            filename, data = fields["file"]
            if len(data) > limit:
                raise HTTPProblem(413, f"upload over the limit of {settings.max_upload_mb:g} MB")
            opts = _options(fields, settings)

            def work() -> bytes:
                animation = read_animation(data, opts.max_frames, settings.max_pixels)
                if animation is not None and opts.edits:
                    raise InputError("keep and drop apply to still pictures, not to animations",
                                     InputKind.BAD_OPTION)
                if animation is not None:  # an animated upload gets an animated answer
                    check_encodable(animation.frames[0].size, opts.fmt)
                    frames, _ = render_animation(matter, animation, opts)
                    buf = io.BytesIO()
                    encode_animation(frames, animation.durations, animation.loop, opts.fmt,
                                     opts.background or (255, 255, 255))(buf)
                    return buf.getvalue()
                image = open_image(data, settings.max_pixels)
                try:
                    check_points([(x, y) for _, x, y in opts.edits], *image.size)
                except ValueError as exc:
                    raise InputError(str(exc), InputKind.BAD_OPTION) from None
                out, _ = render(matter, image, opts)
                return encode(out, opts.fmt)

            def work_and_return_memory() -> bytes:
                try:
                    return work()
                finally:
                    return_memory()
            try:
                payload = await anyio.to_thread.run_sync(work_and_return_memory, limiter=gate.limiter)
            except InputError as exc:
                raise HTTPProblem(STATUS_FOR_KIND.get(exc.kind, 415), str(exc)) from None
            except Exception as exc:  # still a JSON answer, never a bare 500
                raise HTTPProblem(500, f"cutout failed: {exc.__class__.__name__}: {exc}") from None
        finally:
            gate.leave()
        ascii_name, uni_name = safe_download_name(filename, "." + opts.fmt)
        disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(uni_name)}"
        return Response(payload, media_type=MEDIA_TYPES[opts.fmt], headers={"Content-Disposition": disposition})

    return app


def return_memory() -> None:
    """Give the memory a request freed back to the system. glibc keeps freed blocks in one
    arena per thread that ran a cutout, so a server that cut out a large picture once would
    stay that large; with two arenas and a trim after each request it comes back down. A
    no-op where the C library is not glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _limit_arenas() -> None:
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX: two arenas for all the worker threads
    except (OSError, AttributeError):
        pass


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, before anything says "serving": a port
    in use or a host that cannot be bound is an ``OSError`` here, with nothing started."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def serve(matter: Matter, settings: ServeSettings, sock: socket.socket | None = None) -> None:
    """Run the app with Uvicorn on ``sock`` (from :func:`listen`; bound here when None) until
    interrupted."""
    import sys

    import uvicorn

    sock = sock or listen(settings.host, settings.port)
    _limit_arenas()
    where = "loopback only; --host 0.0.0.0 exposes it to the network" if settings.host in (
        "127.0.0.1", "localhost", "::1") else "reachable from the network"
    port = sock.getsockname()[1]  # the port asked for, or the one the system gave for 0
    print(f"kirinuki: serving {matter.info.describe()} on http://{settings.host}:{port}/ ({where})",
          file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(matter, settings), log_level="warning"))
    server.run(sockets=[sock])
