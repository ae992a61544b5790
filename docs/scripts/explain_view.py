"""The README's screenshot of the Explain view: serve a run, explain a sentence, screenshot.

    python docs/scripts/explain_view.py runs/demo/runs/rnn-dot "vierundsechzig ; zwei" \\
        --step 1 --out docs/figures/explain_view.png

Needs Chromium (``/usr/bin/chromium``) and Playwright, as the browser tests do.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("sentence")
    ap.add_argument("--step", type=int, default=0, help="output word to show (from 0)")
    ap.add_argument("--out", default="docs/figures/explain_view.png")
    ap.add_argument("--height", type=int, default=1500)
    args = ap.parse_args()
    import uvicorn
    from playwright.sync_api import sync_playwright

    from attnmt.inference.translator import Translator
    from attnmt.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Translator.from_run(args.run), args.run)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": args.height})
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector("#explain:not([hidden])")
        page.fill("#source", args.sentence)
        page.click("#explain")
        page.wait_for_selector(".step-box")
        for _ in range(args.step):
            page.click("#ex-next")
        page.locator("#explain-section").screenshot(path=args.out)
        browser.close()
    server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
