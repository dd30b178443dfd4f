"""What a user sees in MLflow's UI after a sweep, checked in a real browser.

Runs a small real sweep (tests/fixtures/atlas_sweep/knobs.yaml: 14 instant trials, ~1 min),
publishes its findings on the parent run (`collapsetune.insight.publish_sweep`), starts
`mlflow ui` on a free loopback port, and loads in headless Chromium (Debian's `chromium`
package; never a downloaded browser build):

- the parent run's page at 1600 px with MLflow's assistant panel open (its default): its
  description must show the sweep's summary, and its pictures must fit the width MLflow gives;
- the runs view (`?workflowType=machine_learning`): every child run's name shows its verdict;
  and the experiment's bare address (which view MLflow picks without it);
- a collapsed trial's samples.md: one line per sample;
- the atlas artifact (`atlas/atlas.html`): every panel title must be drawn by plotly, and the
  best trial's run address is shown (MLflow's viewer frames it with sandbox="allow-scripts",
  so no link can leave it); opened as a file, its link lands on the run;
- optuna-dashboard (when installed) on the sweep's study: real objective values, feasible and
  infeasible trials.

Drives Chromium over its DevTools protocol (websocket-client), so it waits for what a person
waits for and reads text inside MLflow's sandboxed artifact frame; asserts on page text, not
pixels, and saves screenshots to docs/screenshots/. Stops exactly the processes it started
(mlflow ui and chromium, each in a process group of its own).

    apt-get install -y chromium && pip install websocket-client    # ~40 s here
    python scripts/browser_check.py                                # --keep leaves the scratch folder
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "atlas_sweep"
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling Google's hosts, which this machine refuses.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars",
         # Frames in the page process: the DevTools connection then sees the sandboxed artifact frame.
         "--disable-site-isolation-trials", "--disable-features=IsolateOrigins,site-per-process"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (printed)")
    parser.add_argument("--shots", default=str(SHOTS), help="where screenshots go")
    parser.add_argument("--scratch", help="reuse a kept scratch folder (its sweep is not run again)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print("chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="collapsetune-browser-"))
    try:
        return check(scratch, Path(args.shots))
    finally:
        if args.keep or args.scratch:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def check(scratch: Path, shots: Path) -> int:
    from mlflow.tracking import MlflowClient

    from collapsetune.atlas import TITLES
    from collapsetune.insight import NOTE_TAG
    from collapsetune.names import PATH_TAG
    from collapsetune.report import run_url, runs_url

    saved = scratch / "ui_port"  # the sweep's atlas links to the UI on this port: a reused scratch keeps it
    port = int(saved.read_text()) if saved.is_file() else free_port()
    saved.write_text(str(port))
    launch = next((scratch / "results").iterdir()) if (scratch / "results").is_dir() else run_sweep(scratch, port)
    store = f"sqlite:///{scratch / 'mlflow.db'}"
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("knobs").experiment_id
    (parent,) = client.search_runs([experiment], f"tags.`{PATH_TAG}` = '{launch}'")
    run_id = parent.info.run_id
    # `collapsetune run` itself wrote the sweep's description and atlas onto its parent run.
    assert NOTE_TAG in parent.data.tags, "the sweep left its parent run without a description"
    headline = parent.data.tags[NOTE_TAG].splitlines()[0].lstrip("# ")
    print(f"parent run {run_id}: {headline}")
    titles = [t.format(metric="collapse/unique_tokens") for t in TITLES]

    shots.mkdir(parents=True, exist_ok=True)
    children = {r.data.tags["ray.trial_id"]: r for r in
                client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{run_id}'")}
    best_trial = next(t for t in parent.data.tags[NOTE_TAG].split("**Best healthy trial:** [")[1:2]).split("]")[0]
    best_run = children[best_trial].info.run_id
    (collapsed,) = client.search_runs([experiment], "tags.`collapse.status` = 'collapsed'", max_results=1)
    with mlflow_ui(store, port, scratch) as base, Chromium(scratch) as browser:
        # 1600 px with MLflow's assistant panel open, as a first visit shows it.
        page = browser.page(1600, 1400)
        page.go(run_url(experiment, run_id, base))
        text = page.wait_for_text(headline)
        for expected in ("Best healthy trial", "trials/collapsed", "search_space.lr"):
            assert expected in text, f"parent run page lacks {expected!r}"
        page.click_text("Show more")  # the description is folded after a few lines
        text = page.wait_for_text("What was stopped, and when")
        page.wait_for(lambda p: p.eval("Array.from(document.images).filter(i => i.src.includes('get-artifact'))"
                                       ".every(i => i.complete && i.naturalWidth > 0)"), timeout=60)
        overflow = page.eval(
            "Array.from(document.images).filter(i => i.src.includes('get-artifact')).map(i => {"
            " const box = i.getBoundingClientRect(); let p = i.parentElement;"
            " while (p && p.scrollWidth <= p.clientWidth + 1 && p !== document.body) p = p.parentElement;"
            " return [i.alt, Math.round(box.right), window.innerWidth, p ? p.tagName : ''];"
            "}).filter(([alt, right, width]) => right > width)")
        assert not overflow, f"description pictures cut off at 1600 px with the assistant open: {overflow}"
        page.screenshot(shots / "mlflow_parent_run.png", scroll_to_text="Description")
        print("parent run page at 1600 px, assistant open: description fits, metrics and params shown")

        page.go(runs_url(experiment, base))
        page.wait_for_text(launch.name)  # the parent run, its trials folded under it
        # the parent run's row holds one button without text: the chevron that unfolds its trials
        page.eval("(() => { const b = Array.from(document.querySelectorAll('.ag-row button'))"
                  ".find(e => !e.textContent.trim()); if (b) b.click(); })()")
        text = page.wait_for_text(collapsed.info.run_name)
        assert collapsed.info.run_name.startswith("collapsed ") and "healthy " in text, text[:1500]
        page.screenshot(shots / "mlflow_runs_view.png")
        print(f"runs view: verdicts in the runs' names ({collapsed.info.run_name!r})")

        page.go(f"{base}/#/experiments/{experiment}/runs/{collapsed.info.run_id}/artifacts/samples.md"
                "?workflowType=machine_learning")
        text = page.wait_for_text("prompt 0 ||| the ⏎ the ⏎ the")  # MLflow renders it as Markdown
        assert "Report 1" in text and "Report 2" in text, text[:1500]
        page.screenshot(shots / "mlflow_samples.png")
        print("samples.md: one line per sample")
        page.go(f"{base}/#/experiments/{experiment}")  # no workflowType: what MLflow picks itself
        time.sleep(3)
        page.wait_for(lambda p: "workflowType" in p.eval("location.href") or "Traces" in p.text())
        bare = page.eval("location.href")
        view = "the runs view" if "machine_learning" in bare else "the GenAI view"
        print(f"experiment with {EXPERIMENT_KIND}, opened without ?workflowType: {view} ({bare})")

        page.go(f"{base}/#/experiments/{experiment}/runs/{run_id}/artifacts/atlas/atlas.html"
                "?workflowType=machine_learning")
        drawn = page.wait_for(lambda p: _plotly_titles(p, titles), timeout=120)
        assert set(titles) <= set(drawn), f"atlas panels not drawn in MLflow's viewer: {set(titles) - set(drawn)}"
        target = run_url(experiment, best_run, base)
        assert target in page.text(), "the atlas in MLflow does not show the best trial's run address"
        sandbox = page.eval("Array.from(document.querySelectorAll('iframe')).map(f => f.getAttribute('sandbox'))")
        page.screenshot(shots / "mlflow_atlas_artifact.png")
        print(f"atlas artifact: every panel drawn by plotly inside MLflow's artifact viewer (sandbox={sandbox}); "
              "the best trial's run address is shown")

        local = client.download_artifacts(run_id, "atlas/atlas.html", str(scratch))
        page = browser.page(1300, 1000)
        page.go(Path(local).as_uri())
        page.wait_for(lambda p: _plotly_titles(p, titles), timeout=60)
        page.screenshot(shots / "atlas.png", full_page=True)
        page.eval("document.querySelector('a.run-link').click()")
        page.wait_for(lambda p: best_run in p.eval("location.href"), timeout=60)
        page.wait_for_text(children[best_trial].info.run_name)
        print("atlas opened as a file: its best-trial link lands on the run's page")

        dashboard(scratch / "results" / launch.name, browser, shots)
    for png in sorted(shots.glob("*.png")):
        print(f"saved {png}")
    print("browser check passed")
    return 0


EXPERIMENT_KIND = "mlflow.experimentKind=custom_model_development"


def _plotly_titles(page: Page, titles: list[str]) -> list[str] | None:
    """Panel titles plotly has drawn (its `.gtitle` SVG text) in any frame, once all are."""
    found = page.eval_frames("Array.from(document.querySelectorAll('.gtitle')).map(e => e.textContent)")
    drawn = [t for values in found for t in (values or [])]
    return drawn if set(titles) <= set(drawn) else None


def dashboard(results: Path, browser: Chromium, shots: Path) -> None:
    """optuna-dashboard on the sweep's study: its trials hold real values, not the penalty."""
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        print("optuna-dashboard not installed (pip install -e '.[dashboard]'): its check skipped")
        return
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{results / 'optuna.db'}")
    values = [t.value for t in study.trials if t.value is not None]
    assert values and max(values) < 1e8, f"the study holds penalised values: {values}"
    infeasible = [t for t in study.trials if any(v > 0 for v in t.constraints.values())]
    assert infeasible, "no collapsed trial is infeasible in the study"
    port = free_port()
    cmd = [sys.executable, "-m", "collapsetune.cli", "dashboard", str(results), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        page = browser.page(1400, 900)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        page.go(f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}")
        page.wait_for_text("History")
        time.sleep(3)
        page.screenshot(shots / "optuna_dashboard.png")
        print(f"optuna-dashboard: {len(values)} real values (max {max(values):.3g}), {len(infeasible)} infeasible")
    finally:
        _end_group(proc)


def run_sweep(scratch: Path, port: int) -> Path:
    (scratch / "sweeps").mkdir()
    for name in ("knobs.yaml", "knobs_wrapper.py"):
        shutil.copy(FIXTURE / name, scratch / "sweeps" / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                                      os.environ.get("PYTHONPATH")]))}
    env["COLLAPSETUNE_MLFLOW_URL"] = f"http://127.0.0.1:{port}"  # the UI address the check will use: links in the atlas
    # optuna (not the sweep's random search): the study optuna-dashboard is checked on
    out = subprocess.run([sys.executable, "-m", "collapsetune.cli", "run", "sweeps/knobs.yaml",
                          "--set", "search.algorithm=optuna"],
                         cwd=scratch, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode not in (0, 1):  # 1: some trial failed, as two of this sweep's do on purpose
        sys.exit(f"sweep failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    (launch,) = (scratch / "results").iterdir()
    return launch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def _end_group(proc: subprocess.Popen) -> None:
    """Ends the process group `proc` leads (started with start_new_session): SIGTERM, then
    SIGKILL after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class mlflow_ui:  # noqa: N801 - used as a context manager, reads as one
    """`mlflow ui` on 127.0.0.1:port in its own process group; the group is ended on exit."""

    def __init__(self, store: str, port: int, cwd: Path):
        self.args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
                     "--host", "127.0.0.1", "--port", str(port)]
        self.base, self.cwd = f"http://127.0.0.1:{port}", cwd

    def __enter__(self) -> str:
        self.log = open(self.cwd / "mlflow-ui.log", "w")
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow ui exited: {(self.cwd / 'mlflow-ui.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/health", timeout=2)
                return self.base
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError("mlflow ui did not answer within 120 s")

    def __exit__(self, *exc) -> None:
        _end_group(self.proc)  # the group this script started: ui and its workers
        self.log.close()


class Chromium:  # noqa: N801 - a context manager
    """Headless Chromium driven over the DevTools protocol; its process group is ended on exit."""

    def __init__(self, scratch: Path):
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=scratch))  # new, empty

    def __enter__(self) -> Chromium:
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        self.port = int(port_file.read_text().split()[0])
        return self

    def page(self, width: int, height: int) -> Page:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        target = json.load(urllib.request.urlopen(request, timeout=30))
        return Page(target["webSocketDebuggerUrl"], width, height)

    def __exit__(self, *exc) -> None:
        _end_group(self.proc)  # the browser and the helpers it started


class Page:
    """One tab: navigate, read text (every frame, sandboxed ones too), click, screenshot."""

    def __init__(self, ws_url: str, width: int, height: int):
        import websocket  # websocket-client: the DevTools protocol's transport

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.ids = iter(range(1, 1 << 30))
        self.contexts: dict[int, str] = {}  # execution context -> frame
        self.size = (width, height)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None) -> dict:
        call = next(self.ids)
        self.ws.send(json.dumps({"id": call, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("method") == "Runtime.executionContextCreated":
                context = message["params"]["context"]
                self.contexts[context["id"]] = context.get("auxData", {}).get("frameId", "")
            elif message.get("method") == "Runtime.executionContextDestroyed":
                self.contexts.pop(message["params"]["executionContextId"], None)
            elif message.get("method") == "Runtime.executionContextsCleared":
                self.contexts.clear()
            if message.get("id") == call:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def go(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        time.sleep(1.0)

    def eval(self, expression: str, context: int | None = None):
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if context is not None:
            params["contextId"] = context
        result = self.send("Runtime.evaluate", params).get("result", {})
        return result.get("value")

    def eval_frames(self, expression: str) -> list:
        values = []
        for context in list(self.contexts):
            try:
                values.append(self.eval(expression, context))
            except RuntimeError:
                pass  # a context that went away meanwhile
        return values

    def text(self) -> str:
        return "\n".join(str(t) for t in self.eval_frames("document.body ? document.body.innerText : ''") if t)

    def wait_for(self, condition, timeout: float = 180.0):
        deadline = time.monotonic() + timeout
        while True:
            value = condition(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s; page text: {self.text()[:1500]}")
            time.sleep(0.5)

    def wait_for_text(self, text: str, timeout: float = 180.0) -> str:
        return self.wait_for(lambda p: (lambda t: t if text in t else "")(p.text()), timeout)

    def click_text(self, text: str) -> None:
        found = self.eval(
            "(() => { const el = Array.from(document.querySelectorAll('button, a, span'))"
            f".find(e => e.textContent.trim() === {json.dumps(text)}); if (el) el.click(); return !!el; }})()")
        if found:
            time.sleep(1.0)

    def screenshot(self, path: Path, full_page: bool = False, scroll_to_text: str = "") -> None:
        if scroll_to_text:
            self.eval("(() => { const el = Array.from(document.querySelectorAll('h1,h2,h3,h4,span,div'))"
                      f".find(e => e.textContent.trim() === {json.dumps(scroll_to_text)}); "
                      "if (el) el.scrollIntoView({block: 'start'}); })()")
            time.sleep(1.0)
        width, height = self.size
        if full_page:
            height = int(self.eval("document.documentElement.scrollHeight")) + 20
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            time.sleep(2.0)  # plotly redraws at the new size
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page})
        path.write_bytes(base64.b64decode(shot["data"]))


if __name__ == "__main__":
    sys.exit(main())
