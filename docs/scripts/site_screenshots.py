"""Screenshots of the built documentation site for the README: the home page and a tutorial
chapter, taken in Chromium from the site served on 127.0.0.1.

    make docs && python docs/scripts/site_screenshots.py --site site --out docs/figures

Needs Chromium (``/usr/bin/chromium``) and Playwright, as the browser tests do.
"""

from __future__ import annotations

import argparse
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without a log line per request."""

    def log_message(self, *args) -> None:
        pass


PAGES = {"site_home.png": "/", "site_tutorial.png": "/tutorial/five-steps/"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", default="site", help="the folder `make docs` built")
    ap.add_argument("--out", default="docs/figures")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    handler = functools.partial(QuietHandler, directory=args.site)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, path in PAGES.items():
            page.goto(base + path, wait_until="networkidle")
            page.screenshot(path=str(Path(args.out) / name))
            print(f"wrote {Path(args.out) / name}")
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
