#!/usr/bin/env python
"""What the live viewer costs the training loop (`gs-recon train ... --viewer`).

Trains the README demo's reconstruction (examples/demo_scene, configs/tiny_cpu.yaml: 700 steps) several
times in this process, interleaved so that drift in the machine's speed hits every variant alike:

- off: no viewer (the baseline, run first and last; after an unreported 100-step warm-up run);
- server: the live viewer serving, no browser connected;
- client: the live viewer with a connected client that receives every message (a websocket reader in a
  thread of this process, as a browser on another machine would be; it does not render).

Reports ms per step, the overhead against the mean of the baseline runs, and the time spent inside the
viewer's update (refreshes and status). No browser renders here: a browser on the same 2 CPU cores would
compete with training for them, which is a cost of the machine, not of the viewer.

    python tools/bench_viewer.py [--iterations 700] [--refresh_every 25]
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import sys
import threading
import time

try:
    import gs_recon  # noqa: F401  (installed)
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reader(url: str, stop: threading.Event, stats: dict) -> None:
    """A client that takes every message the viewer sends (and draws nothing)."""
    import viser
    from websockets.sync.client import connect

    with connect(url, subprotocols=[f"viser-v{viser.__version__}"], max_size=None) as ws:
        while not stop.is_set():
            try:
                msg = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001  (server closed)
                return
            stats["messages"] += 1
            stats["bytes"] += len(msg)


def run_once(variant: str, iterations: int, refresh_every: int):
    import torch

    from gs_recon.config import load_config
    from gs_recon.data.scene import load_scene
    from gs_recon.train.recon import Trainer

    cfg = load_config(os.path.join(ROOT, "configs", "tiny_cpu.yaml"), [f"train.iterations={iterations}"])
    torch.manual_seed(0)
    scene = load_scene(os.path.join(ROOT, "examples", "demo_scene"), cfg.data)
    tr = Trainer(scene, cfg)
    live, stop, stats, th = None, threading.Event(), {"messages": 0, "bytes": 0}, None
    if variant != "off":
        from gs_recon.viewer.live import LiveViewer

        live = LiveViewer(scene, port=_free_port(), refresh_every=refresh_every)
        tr.monitor = live.update
        if variant == "client":
            th = threading.Thread(target=_reader, args=(f"ws://127.0.0.1:{live.port}", stop, stats), daemon=True)
            th.start()
            time.sleep(1.0)
    t0, c0 = time.perf_counter(), time.process_time()
    tr.fit(progress=False)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.set()
    if th is not None:
        th.join(timeout=10)
    inside = live.seconds if live else 0.0
    refreshes = live.refreshes if live else 0
    if live:
        live.stop()
    return {"variant": variant, "s": dt, "cpu_s": cpu, "ms_per_step": 1000 * dt / iterations, "viewer_s": inside,
            "refreshes": refreshes, "n": int(tr.params["means"].shape[0]), **stats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=700)
    ap.add_argument("--refresh_every", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (off, client, server), then off once more")
    a = ap.parse_args()
    import logging

    import torch

    logging.getLogger("gs_recon").setLevel(logging.ERROR)
    run_once("off", 100, a.refresh_every)  # warm-up, not reported (the first run in a process is ~50% slower)
    rows = []
    for variant in [v for _ in range(a.rounds) for v in ("off", "client", "server")] + ["off"]:
        r = run_once(variant, a.iterations, a.refresh_every)
        rows.append(r)
        print(f"{variant:>7}: {r['s']:.1f} s, {r['ms_per_step']:.1f} ms/step, in viewer {r['viewer_s']:.2f} s, "
              f"{r['refreshes']} refreshes, {r['messages']} messages {r['bytes'] / 2**20:.1f} MiB", flush=True)
    offs = [r for r in rows if r["variant"] == "off"]
    base, base_cpu = sum(r["s"] for r in offs) / len(offs), sum(r["cpu_s"] for r in offs) / len(offs)
    print(f"\n{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}; "
          f"README demo reconstruction, {a.iterations} steps, refresh every {a.refresh_every} steps")
    print("| run | variant | wall s | ms/step | wall vs mean of off | CPU s (all threads) | CPU vs mean of off | "
          "inside the viewer | refreshes | sent |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        sent = f"{r['bytes'] / 2**20:.1f} MiB" if r["variant"] == "client" else "-"
        print(f"| {i + 1} | {r['variant']} | {r['s']:.1f} | {r['ms_per_step']:.1f} | {100 * (r['s'] / base - 1):+.1f}% | "
              f"{r['cpu_s']:.1f} | {100 * (r['cpu_s'] / base_cpu - 1):+.1f}% | {r['viewer_s']:.2f} s | {r['refreshes']} | {sent} |")
    for v in ("client", "server"):
        rs = [r for r in rows if r["variant"] == v]
        if rs:
            print(f"{v}: wall {100 * (sum(r['s'] for r in rs) / len(rs) / base - 1):+.1f}%, CPU "
                  f"{100 * (sum(r['cpu_s'] for r in rs) / len(rs) / base_cpu - 1):+.1f}%, inside the viewer "
                  f"{100 * sum(r['viewer_s'] for r in rs) / sum(r['s'] for r in rs):.2f}% of the wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
