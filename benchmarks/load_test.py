"""Bounded load test of ``kirinuki serve`` from a second process.

    python benchmarks/load_test.py --requests 200 --concurrency 8 [--url http://127.0.0.1:8000]

Without --url it starts ``kirinuki serve`` itself on a free loopback port (with --model,
--workers, --queue passed on) and reads the server's peak RSS from /proc. Prints requests/s,
p50/p95 latency, answers by status (only deliberate 503s are acceptable) and peak RSS; exits
1 when any answer is neither 200 nor 503.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "kirinuki" / "samples" / "sylvie-on-meadow.jpg"


def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def one_request(url: str, body: bytes, ctype: str) -> tuple[int, float]:
    req = urllib.request.Request(url + "/api/cutout", data=body, headers={"Content-Type": ctype})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        exc.read()
        status = exc.code
    except OSError:
        status = 0  # connection refused or reset
    return status, time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "kirinuki", "serve", "--port", str(port), "--workers", str(args.workers),
           "--queue", str(args.queue)]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stderr.read()}")
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--image", type=Path, default=SAMPLE)
    ap.add_argument("--model")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()

    proc = None
    url = args.url
    if not url:
        proc, url = start_server(args)
    body, ctype = multipart(args.image.read_bytes(), args.image.name)
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda _: one_request(url, body, ctype), range(args.requests)))
        wall = time.perf_counter() - t0
        rss = peak_rss_mb(proc.pid) if proc else None
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    ok = sorted(t for s, t in results if s == 200)
    statuses = Counter(s for s, _ in results)
    report = {
        "requests": args.requests, "concurrency": args.concurrency, "workers": args.workers, "queue": args.queue,
        "image": args.image.name, "seconds": round(wall, 2),
        "requests_per_s": round(args.requests / wall, 2), "ok_per_s": round(len(ok) / wall, 2),
        "p50_ms": round(1000 * statistics.median(ok), 1) if ok else None,
        "p95_ms": round(1000 * ok[min(len(ok) - 1, int(0.95 * len(ok)))], 1) if ok else None,
        "statuses": dict(sorted(statuses.items())), "server_peak_rss_mb": round(rss, 1) if rss else None,
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>20}: {v}")
    return 0 if set(statuses) <= {200, 503} else 1


if __name__ == "__main__":
    sys.exit(main())
