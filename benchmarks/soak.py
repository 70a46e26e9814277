"""A bounded soak of ``kirinuki serve`` on 127.0.0.1: a mix of clients for a fixed time.

    python benchmarks/soak.py [--seconds 600] [--requests 100000] [--clients 6] [--model FILE]

It starts the server itself on a free loopback port (``load_test.py``'s helpers) and sends,
round-robin from ``--clients`` threads until ``--seconds`` or ``--requests`` is reached:
good pictures (the meadow sample at 320 px), a keep/drop click on one, an animated GIF,
files that are not pictures (random bytes, a cut-short PNG, an empty file), and slow clients
that send their upload in pieces over two seconds. Meanwhile one thread asks ``/healthz``
every half second and another reads the server's memory (VmRSS) as often. It prints the
requests, the answers by class (2xx / 4xx / 5xx, and failed connections), p50 / p95
latency, the slowest ``/healthz`` and the server's memory at the start, at its peak and at
the end, and exits 1 when any answer was a 5xx or a failed connection, or ``/healthz`` took
longer than 1 s. Only loopback traffic, bounded in count and time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import SAMPLE, multipart, one_request, start_server  # noqa: E402

HEALTH_LIMIT_S = 1.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def payloads() -> list[tuple[str, bytes, str, dict]]:
    """(kind, file bytes, file name, form fields) for each kind of request in the mix."""
    picture = Image.open(SAMPLE).convert("RGB")
    picture.thumbnail((320, 320))
    png = io.BytesIO()
    picture.save(png, "PNG")
    frames = [picture.rotate(5 * k) for k in range(4)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=80)
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    return [("picture", png.getvalue(), "a.png", {}),
            ("click", png.getvalue(), "a.png", {"edits": "drop:10,10;keep:160,200"}),
            ("animation", gif.getvalue(), "a.gif", {}),
            ("not a picture", noise, "noise.png", {}),
            ("cut short", png.getvalue()[:300], "short.png", {}),
            ("empty", b"", "empty.png", {}),
            ("slow client", png.getvalue(), "slow.png", {"slow": True})]


def form(data: bytes, name: str, fields: dict) -> tuple[bytes, str]:
    body, ctype = multipart(data, name)
    boundary = ctype.split("boundary=")[1]
    extra = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                     for k, v in fields.items() if k != "slow")
    return extra + body, ctype


def slow_request(url: str, body: bytes, ctype: str, seconds: float = 2.0) -> tuple[int, float]:
    """An upload sent in eight pieces over ``seconds``; (status, latency)."""
    host, port = url.split("//")[1].split(":")
    t0 = time.perf_counter()
    try:
        with socket.create_connection((host, int(port)), timeout=120) as s:
            s.sendall(f"POST /api/cutout HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
            step = max(1, len(body) // 8)
            for k in range(0, len(body), step):
                s.sendall(body[k:k + step])
                time.sleep(seconds / 8)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1]), time.perf_counter() - t0
    except (OSError, IndexError, ValueError):
        return 0, time.perf_counter() - t0


def soak(url: str, pid: int, seconds: float, most: int, clients: int) -> dict:
    mix = [(kind, *form(data, name, fields), fields.get("slow", False)) for kind, data, name, fields in payloads()]
    stop = time.monotonic() + seconds
    results: list[tuple[str, int, float]] = []
    health: list[float] = []
    memory: list[float] = [rss_mb(pid)]
    lock, count = threading.Lock(), [0]

    def client(k: int) -> None:
        n = k
        while time.monotonic() < stop:
            with lock:
                if count[0] >= most:
                    return
                count[0] += 1
            kind, body, ctype, slow = mix[n % len(mix)]
            n += clients
            status, latency = (slow_request if slow else one_request)(url, body, ctype)
            with lock:
                results.append((kind, status, latency))

    def watch() -> None:
        import urllib.request
        while time.monotonic() < stop and count[0] < most:
            t0 = time.perf_counter()
            try:
                urllib.request.urlopen(url + "/healthz", timeout=10).read()
                health.append(time.perf_counter() - t0)
            except OSError:
                health.append(float("inf"))
            memory.append(rss_mb(pid))
            time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)] + [threading.Thread(target=watch)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1.0)
    memory.append(rss_mb(pid))
    statuses = Counter(s for _, s, _ in results)
    latencies = sorted(t for _, s, t in results if 200 <= s < 300)
    classes = Counter("failed connection" if s == 0 else f"{s // 100}xx" for s in statuses.elements())
    return {
        "seconds": round(time.perf_counter() - t0, 1), "requests": len(results), "clients": clients,
        "answers": dict(sorted(classes.items())), "by_status": {str(k): v for k, v in sorted(statuses.items())},
        "by_kind": {kind: dict(Counter(str(s) for k, s, _ in results if k == kind)) for kind, *_ in mix},
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
        "healthz_max_s": round(max(health), 3) if health else None, "healthz_checks": len(health),
        "rss_mb": {"start": round(memory[0]), "peak": round(max(memory)), "end": round(memory[-1])},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--requests", type=int, default=100_000, help="stop after this many requests in all")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--model")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue", type=int, default=8)
    args = ap.parse_args()
    proc, url = start_server(args)
    try:
        report = soak(url, proc.pid, args.seconds, args.requests, args.clients)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(report, indent=1))
    bad = report["answers"].get("5xx", 0) + report["answers"].get("failed connection", 0)
    slow_health = report["healthz_max_s"] is None or report["healthz_max_s"] > HEALTH_LIMIT_S
    return 1 if bad or slow_health else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
