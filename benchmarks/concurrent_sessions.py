"""Ten app sessions at once, each predicting a different upload: errors and the server's memory.

Starts ``streamlit run app.py`` on 127.0.0.1, writes N small XYZ files (bundled GFN1-xTB
structures of N different clusters, every atom moved by up to ``--jitter`` Å), and drives N
headless Chromium contexts (Playwright with Debian's /usr/bin/chromium, as
tests/test_browser.py does) that all open the Predict page, upload their file and wait for
the prediction. A sampler records the resident memory (RSS) of the server process and of
the server with all its child processes (xTB workers) every 0.2 s.

Prints and writes ``benchmarks/results/concurrent_sessions.txt``: errors on any page (must
be 0), wall time to the last prediction, per-session median and max, and peak RSS next to
the idle server's, with their ratio.

    python benchmarks/concurrent_sessions.py [--sessions 10] [--jitter 0.05]
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "concurrent_sessions.txt"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def write_uploads(n: int, jitter: float, folder: Path) -> list[Path]:
    """N perturbed copies of different bundled clusters of 3 to 6 atoms, comment line with charge and spin."""
    sys.path.insert(0, str(ROOT))
    from cluster_gnn.datasets import load_clusters, structure_path
    from cluster_gnn.structures import read_cluster, write_cluster

    table = load_clusters()
    table = table[(table["n_atoms"] >= 3) & (table["n_atoms"] <= 6) & table["multiplicity"].notna()]
    rng = np.random.default_rng(0)
    paths = []
    for _, row in table.iterrows():
        if len(paths) == n:
            break
        if not structure_path(row["name"]).is_file():
            continue
        atoms = read_cluster(structure_path(row["name"]))
        atoms.positions += rng.uniform(-jitter, jitter, atoms.positions.shape)
        path = folder / f"upload-{len(paths) + 1:02d}-{row['name'].replace('-', 'anion')}.xyz"
        write_cluster(path, atoms, charge=int(row["charge"]), multiplicity=int(row["multiplicity"]))
        paths.append(path)
    return paths


class Sampler(threading.Thread):
    """Peak RSS (bytes) of a process and of the process with its children."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.process, self.every_s, self.stop = psutil.Process(pid), every_s, threading.Event()
        self.peak_server = self.peak_total = self.peak_children = 0

    def sample(self) -> tuple[int, int]:
        server = self.process.memory_info().rss
        children = 0
        for child in self.process.children(recursive=True):
            try:
                children += child.memory_info().rss
            except psutil.Error:
                pass
        self.peak_server = max(self.peak_server, server)
        self.peak_total = max(self.peak_total, server + children)
        self.peak_children = max(self.peak_children, len(self.process.children(recursive=True)))
        return server, server + children

    def run(self):
        while not self.stop.is_set():
            try:
                self.sample()
            except psutil.Error:
                return
            time.sleep(self.every_s)


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
           "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"streamlit did not start: {log.read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--jitter", type=float, default=0.05, help="largest move of each atom in Å")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="concurrent-sessions-"))
    uploads = write_uploads(args.sessions, args.jitter, work)
    proc, url = start_server(work / "server.log")
    sampler = Sampler(proc.pid)
    try:
        time.sleep(2)
        idle_server, _ = sampler.sample()
        sampler.start()
        with sync_playwright() as api:
            browser = api.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            pages, started, finished = [], {}, {}
            t0 = time.monotonic()
            for i, path in enumerate(uploads):
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(args.timeout_s * 1000)
                page.goto(f"{url}/Predict")
                pages.append(page)
            for i, (page, path) in enumerate(zip(pages, uploads)):
                page.get_by_text("Upload XYZ", exact=True).first.click()
                page.locator('input[type="file"]').first.set_input_files(str(path))
                started[i] = time.monotonic()
            deadline = time.monotonic() + args.timeout_s
            while len(finished) < len(pages) and time.monotonic() < deadline:
                for i, page in enumerate(pages):
                    if i in finished:
                        continue
                    done = page.locator('iframe[title^="3D structure of"][title$=")"]').count() > 0  # the upload is drawn
                    failed = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
                    if done or failed:
                        finished[i] = time.monotonic()
                time.sleep(0.5)
            wall = time.monotonic() - t0
            time.sleep(2)
            errors = {}
            for i, page in enumerate(pages):
                texts = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()
                if texts or i not in finished:
                    errors[uploads[i].name] = (texts[0][:200] if texts else "no prediction before the timeout")
            browser.close()
    finally:
        sampler.stop.set()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    per = [finished[i] - started[i] for i in finished]
    mib = 1 / 2**20
    lines = [
        f"{args.sessions} concurrent sessions, each uploading a different cluster (3-6 atoms, atoms moved up to "
        f"{args.jitter} A) to the Predict page; {os.cpu_count()} cores, shared with other work",
        f"errors on any page: {len(errors)}" + "".join(f"\n  {k}: {v}" for k, v in errors.items()),
        f"wall time to the last prediction: {wall:.1f} s; per session median {statistics.median(per):.1f} s, "
        f"max {max(per):.1f} s" if per else "no session finished",
        f"server RSS: idle {idle_server * mib:.0f} MiB, peak {sampler.peak_server * mib:.0f} MiB "
        f"(x{sampler.peak_server / idle_server:.1f} idle)",
        f"server + its worker processes, peak RSS: {sampler.peak_total * mib:.0f} MiB "
        f"(x{sampler.peak_total / idle_server:.1f} the idle server; at most {sampler.peak_children} child processes)",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
