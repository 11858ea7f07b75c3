"""Screenshot a page with headless Chromium over the DevTools protocol: open, wait a fixed time (the
viser client keeps a websocket open, so 'network idle' never comes), capture. Test helper only."""
import asyncio
import base64
import json
import subprocess
import time
import urllib.request


def screenshot(chromium: str, url: str, out, profile, width: int = 1200, height: int = 800, wait_s: float = 12.0,
               port: int = 9333, settle_s: float = 45.0, click=None) -> dict:
    """Returns {"text": the page's text, "canvas": the 3D canvas's rect (x, y, width, height)} at capture.
    click(rect) -> (x, y): page pixel to left-click (after wait_s, before the capture)."""
    proc = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                             "--enable-unsafe-swiftshader", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run",
                             f"--user-data-dir={profile}", f"--window-size={width},{height}",
                             f"--remote-debugging-port={port}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while True:
            try:
                tabs = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2).read())
                page = next(t for t in tabs if t.get("type") == "page")
                break
            except Exception:
                if time.time() - t0 > 30:
                    raise RuntimeError("chromium's DevTools endpoint did not come up")
                time.sleep(0.3)
        return asyncio.run(_capture(page["webSocketDebuggerUrl"], url, out, width, height, wait_s, settle_s, click))
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def _capture(ws_url, url, out, width, height, wait_s, settle_s, click):
    import websockets

    async with websockets.connect(ws_url, max_size=64 * 2**20) as ws:
        n = 0

        async def call(method, **params):
            nonlocal n
            n += 1
            await ws.send(json.dumps({"id": n, "method": method, "params": params}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if msg.get("id") == n:
                    return msg.get("result", {})

        await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        await asyncio.sleep(wait_s)

        async def evaluate(expr):
            r = await call("Runtime.evaluate", expression=expr, returnByValue=True)
            return r.get("result", {}).get("value")

        rect = json.loads(await evaluate(
            "(() => { let best = null; for (const c of document.querySelectorAll('canvas')) {"
            " const r = c.getBoundingClientRect(); if (!best || r.width * r.height > best.width * best.height) best = r; }"
            " return JSON.stringify(best ? {x: best.x, y: best.y, width: best.width, height: best.height} : null); })()"))
        if click is not None:
            x, y = click(rect)
            for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                await call("Input.dispatchMouseEvent", type=kind, x=float(x), y=float(y), button="left",
                           clickCount=0 if kind == "mouseMoved" else 1)
                await asyncio.sleep(0.15)
            await asyncio.sleep(3.0)
        # software WebGL under load can still be fading splats in: capture until two shots 3 s apart agree
        # (under 0.5% of pixels differ by > 10 levels), at most settle_s more
        prev, t0 = None, time.time()
        while True:
            png = base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"])
            cur = _pixels(png)
            if prev is not None and (abs(cur - prev).max(-1) > 10).mean() < 0.005 or time.time() - t0 > settle_s:
                break
            prev = cur
            await asyncio.sleep(3.0)
        with open(out, "wb") as f:
            f.write(png)
        return {"text": await evaluate("document.body.innerText"), "canvas": rect}


def _pixels(png: bytes):
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
