#!/usr/bin/env python3
"""Requests for scripts/container-check.sh, standard library only (no dotnet build on the host).

  load.py predict URL N SEED        N distinct images, one after another; prints one JSON line per
                                    answer ({"status", "silo"}); exits 1 unless all answered 200.
  load.py run URL --clients C --images N --seed S --at T --command CMD --after A [bounds]
      C closed-loop clients cycle over N distinct images (mostly cache hits after the first round,
      as tests/.../LoadRun does); T seconds in, CMD runs (podman kill/stop of a silo); the load goes
      on A seconds after CMD returns. Then it judges the run against the bounds of
      tests/Cluster.Tests/Reliability/SiloCrashTests.cs (all 200 before the event; at most
      --max-failures non-200 after it; the slowest request after it under --slowest seconds; none
      failing later than --recovery seconds; after that, all 200 and none from --victim), prints a
      summary and exits 1 when a bound is broken.

Images are small grayscale PNGs written here (zlib + CRC): each seed gives other bytes, so the
gateway's content hash spreads them over the shards and hence over the silos.
"""
import argparse
import json
import shlex
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib


def png(seed, size=48):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = bytearray()
    x = seed * 2654435761 & 0xFFFFFFFF
    for y in range(size):
        rows.append(0)
        for i in range(size):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            # Dark strokes on white, top-heavy: something text-like enough for the orientation model.
            rows.append(20 if (x >> 16) % 7 == 0 and y < size * 2 // 3 else 235)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b""))


def post(url, body, timeout=60):
    """(status, silo or error, seconds). Connection errors count as status 0."""
    start = time.monotonic()
    req = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "image/png"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            silo = json.loads(r.read()).get("silo", "")
            return r.status, silo, time.monotonic() - start
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:200].decode(errors="replace"), time.monotonic() - start
    except Exception as e:  # refused, reset, timed out: a failed request all the same
        return 0, repr(e)[:200], time.monotonic() - start


def predict(args):
    ok = True
    for i in range(args.n):
        status, silo, _ = post(args.url, png(args.seed + i))
        print(json.dumps({"image": args.seed + i, "status": status, "silo": silo}))
        ok &= status == 200
    return 0 if ok else 1


def run(args):
    images = [png(args.seed + i) for i in range(args.images)]
    outcomes = []  # (start offset, end offset, status, silo, image)
    lock = threading.Lock()
    stop = threading.Event()
    t0 = time.monotonic()

    def client(k):
        i = k
        while not stop.is_set():
            image = i % len(images)
            start = time.monotonic() - t0
            status, silo, took = post(args.url, images[image])
            with lock:
                outcomes.append((start, start + took, status, silo, image))
            i += args.clients

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(args.at)
    event_at = time.monotonic() - t0
    result = subprocess.run(shlex.split(args.command), capture_output=True, text=True)
    event_done = time.monotonic() - t0
    time.sleep(args.after)
    stop.set()
    for t in threads:
        t.join()

    before = [o for o in outcomes if o[1] <= event_at]
    after = [o for o in outcomes if o[1] > event_at]
    failures = [o for o in after if o[2] != 200]
    last_failure = max((o[1] - event_at for o in failures), default=0.0)
    slowest = max((o[1] - o[0] for o in after), default=0.0)
    settled = [o for o in after if o[1] - event_at > args.recovery]
    victim_images = {o[4] for o in before if o[3] == args.victim}
    by_silo = {}
    for o in before:
        if o[2] == 200:
            by_silo.setdefault(o[3], set()).add(o[4])
    problems = []
    if result.returncode != 0:
        problems.append(f"'{args.command}' failed: {result.stderr.strip()[:200]}")
    if len(before) < 20 or any(o[2] != 200 for o in before):
        problems.append(f"not serving cleanly before the event: {len(before)} requests, "
                        f"{sum(o[2] != 200 for o in before)} not 200")
    if args.victim and not victim_images:
        problems.append(f"{args.victim} served none of the images before the event")
    if len(failures) > args.max_failures:
        problems.append(f"{len(failures)} requests failed after the event (allowed {args.max_failures}): "
                        + "; ".join(f"{o[2]} {o[3]}" for o in failures[:5]))
    if slowest > args.slowest:
        problems.append(f"the slowest request after the event took {slowest:.1f} s (allowed {args.slowest} s)")
    if failures and last_failure > args.recovery:
        problems.append(f"failures went on {last_failure:.1f} s after the event")
    if any(o[2] != 200 or o[3] == args.victim for o in settled):
        problems.append(f"after {args.recovery} s, answers still failed or came from {args.victim}")
    if args.victim and settled and not any(o[4] in victim_images for o in settled):
        problems.append(f"none of {args.victim}'s images was served again")
    summary = {
        "event": args.command, "event_seconds": round(event_done - event_at, 1),
        "requests_before": len(before), "requests_after": len(after), "failed_after": len(failures),
        "failed_statuses": sorted({o[2] for o in failures}),
        "last_failure_s": round(last_failure, 1), "slowest_after_s": round(slowest, 2),
        "images_per_silo_before": {k: len(v) for k, v in sorted(by_silo.items())},
        "victim_images": len(victim_images), "problems": problems,
    }
    print(json.dumps(summary))
    print(f"{len(failures)} of {len(after)} requests failed after the event (statuses {summary['failed_statuses']}), "
          f"slowest {slowest:.2f} s; the event took {event_done - event_at:.1f} s; "
          f"the victim had served {len(victim_images)} of {args.images} images"
          + ("; PROBLEMS: " + "; ".join(problems) if problems else ""))
    return 1 if problems else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("predict")
    a.add_argument("url")
    a.add_argument("n", type=int)
    a.add_argument("seed", type=int)
    r = sub.add_parser("run")
    r.add_argument("url")
    r.add_argument("--clients", type=int, default=4)
    r.add_argument("--images", type=int, default=48)
    r.add_argument("--seed", type=int, default=9000)
    r.add_argument("--at", type=float, default=6)
    r.add_argument("--command", required=True)
    r.add_argument("--after", type=float, default=30)
    r.add_argument("--victim", default="")
    r.add_argument("--max-failures", type=int, default=0)
    r.add_argument("--slowest", type=float, default=5)
    r.add_argument("--recovery", type=float, default=25)
    args = p.parse_args()
    sys.exit(predict(args) if args.mode == "predict" else run(args))


if __name__ == "__main__":
    main()
