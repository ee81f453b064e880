"""`make compose-check`: bring each compose stack up from nothing and call every service once.

For each stack: `docker compose build`, `up -d`, then wait until every service is what it
should be: healthy if it has a health check, running if not, and exited 0 if other services
wait for it to complete (migrate). A service that exits, or turns unhealthy, fails the check
at once with its last log lines (`up -d` returns 0 even when a container dies at start).
Then one real call per service, in order (the trainer's jobs make the data the others
read), and `down -v`, so every run starts from empty volumes.

Calls go to each service's published port on 127.0.0.1. A service's calls carry its secret as
`X-SECRET-KEY`: the one the rendered compose config gives it (`INTERPEDIA_SECRET`, `SECRET`
or `INTERPEDIA_<SERVICE>_SECRET`), else the one the stack generated, read from the file
its `INTERPEDIA_SECRET_FILE` names inside the running container. Adding a service is one
`Call` line in `STACKS`.

Only the standard library and the `docker` CLI are needed:

    python scripts/compose_check.py                          # both stacks
    python scripts/compose_check.py docker-compose.yaml --keep   # one stack, left running
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m"
PROMPT = "The president asked Congress to cut taxes for working families."


class CheckFailed(Exception):
    """The stack or one of its services did not do what it should."""


class Stack:
    """A compose project: its files, its services' state, and HTTP calls to them."""

    def __init__(self, files: list[str], env: dict[str, str]) -> None:
        self.files = files
        self.env = os.environ | env
        self.config = json.loads(self.compose("config", "--format", "json", capture=True))
        self.state: dict[str, Any] = {}  # what one call leaves for the next (a source id, ...)
        self._secrets: dict[str, str] = {}  # generated secrets read from the containers

    def compose(self, *args: str, capture: bool = False) -> str:
        command = ["docker", "compose", *(a for f in self.files for a in ("-f", f)), *args]
        result = subprocess.run(
            command, cwd=ROOT, env=self.env, text=True, capture_output=capture, check=False
        )
        if result.returncode != 0:
            detail = (result.stderr or "").strip()[-2000:] if capture else ""
            raise CheckFailed(f"`{' '.join(command)}` exited {result.returncode}\n{detail}")
        return result.stdout or ""

    # -- services -------------------------------------------------------------------
    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json", capture=True).strip()
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def one_shot_services(self) -> set[str]:
        """Services that others wait for with `service_completed_successfully`."""
        return {
            name
            for spec in self.config["services"].values()
            for name, dep in (spec.get("depends_on") or {}).items()
            if dep.get("condition") == "service_completed_successfully"
        }

    def wait_ready(self, started: float, timeout: float) -> list[str]:
        """Block until every service is ready; one line per service. Fails fast on a death.

        `started`: when `up` began (it blocks until the dependencies it waits for are up)."""
        one_shot = self.one_shot_services()
        deadline = started + timeout
        ready: dict[str, str] = {}
        while True:
            containers = self.containers()
            for c in containers:
                name, status = c["Service"], self._status(c, c["Service"] in one_shot)
                if status in ("healthy", "running", "completed") and name not in ready:
                    ready[name] = f"{name:<11} {status:<9} after {time.monotonic() - started:4.0f}s"
                    print(f"  {ready[name]}", flush=True)
                elif status not in ("healthy", "running", "completed", "starting"):
                    raise CheckFailed(self.describe(name, status))
            if len(ready) == len(self.config["services"]):
                return list(ready.values())
            if time.monotonic() > deadline:
                waiting = sorted(set(self.config["services"]) - set(ready))
                raise CheckFailed(f"not ready after {timeout:.0f}s: {', '.join(waiting)}")
            time.sleep(3)

    def describe(self, service: str, status: str) -> str:
        logs = self.compose("logs", "--no-color", "--tail", "30", service, capture=True)
        return f"service {service} is {status}; its last log lines:\n{logs}"

    def diagnose(self) -> str:
        """Every service that is not ready, with its logs (after `up` itself failed)."""
        one_shot = self.one_shot_services()
        return "\n".join(
            self.describe(c["Service"], status)
            for c in self.containers()
            if (status := self._status(c, c["Service"] in one_shot))
            not in ("healthy", "running", "completed")
        )

    @staticmethod
    def _status(container: dict[str, Any], one_shot: bool) -> str:
        state, health = container["State"], container.get("Health") or ""
        if state == "exited":
            code = container.get("ExitCode", -1)
            return "completed" if one_shot and code == 0 else f"exited ({code})"
        if state == "created":
            return "starting"
        if state != "running":
            return state  # restarting (a crash loop) / dead / paused
        if one_shot:
            return "starting"  # still running: ready once it has exited 0
        return {"": "running", "starting": "starting"}.get(health, health)

    # -- HTTP -----------------------------------------------------------------------
    def url(self, service: str, path: str) -> str:
        ports = self.config["services"][service].get("ports") or []
        if not ports:
            raise CheckFailed(f"service {service} publishes no port to call")
        return f"http://127.0.0.1:{ports[0]['published']}{path}"

    def secret(self, service: str) -> str | None:
        env = self.config["services"][service].get("environment") or {}
        given = (
            env.get(f"INTERPEDIA_{service.upper()}_SECRET")
            or env.get("INTERPEDIA_SECRET")
            or env.get("SECRET")
        )
        if given or not env.get("INTERPEDIA_SECRET_FILE"):
            return given or None
        if service not in self._secrets:  # generated inside the stack: ask the container
            read = ("exec", "-T", service, "cat", env["INTERPEDIA_SECRET_FILE"])
            self._secrets[service] = self.compose(*read, capture=True).strip()
        return self._secrets[service]

    def request(self, service: str, method: str, path: str, body: Any = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if secret := self.secret(service):
            headers["X-SECRET-KEY"] = secret
        request = urllib.request.Request(
            self.url(service, path), data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise CheckFailed(
                f"{method} {service}{path}: {exc.code} {exc.read().decode()[:500]}"
            ) from None

    def get(self, service: str, path: str) -> Any:
        return json.loads(self.request(service, "GET", path))

    def post(self, service: str, path: str, body: Any) -> Any:
        return json.loads(self.request(service, "POST", path, body))

    def wait_job(self, service: str, job_id: int, timeout: float = 900.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(service, f"/v1/jobs/{job_id}")
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "cancelled", "aborted"):
                logs = self.compose("logs", "--no-color", "--tail", "25", capture=True)
                raise CheckFailed(
                    f"job {job_id} ({job['task']}) {job['status']}: {job['message']}\n{logs}"
                )
            time.sleep(2)
        raise CheckFailed(f"job {job_id} did not finish within {timeout:.0f}s")


# -- the calls ---------------------------------------------------------------------------
def train_and_dashboards(stack: Stack) -> str:
    """A small SAE trained and its dashboards computed, as two jobs run by a worker.

    Training runs the model over its whole corpus first (to cache activations): on the
    default corpus that is hours on two cores, so this trains on two speeches, copied into
    the corpora volume that the trainer and the worker share."""
    corpus = "/cache/corpora/compose-check"
    copy = f"mkdir -p {corpus} && cp /cache/corpora/sotu/200[12]_*.txt {corpus}/"
    stack.compose("exec", "-T", "trainer", "sh", "-c", copy, capture=True)
    source_set = f"check-{int(time.time())}"
    train = {
        "corpus": corpus,
        "model_id": MODEL,
        "hook_name": "blocks.6.hook_resid_post",
        "d_sae": 64,
        "k": 8,
        "total_tokens": 8192,
        "batch_size": 512,
        "context_size": 64,
        "lr": 0.002,
        "source_set": source_set,
    }
    [train_job] = stack.post("trainer", "/v1/train", train)["job_ids"]
    stack.wait_job("trainer", train_job)
    source = f"6-{source_set}"
    dashboards = {
        "model_id": MODEL,
        "source_id": source,
        "corpus": corpus,
        "n_prompts": 32,
        "context_size": 64,
    }
    [dash_job] = stack.post("trainer", "/v1/dashboards", dashboards)["job_ids"]
    stack.wait_job("trainer", dash_job)
    stack.state["source"] = source
    return f"train job {train_job} and dashboards job {dash_job} succeeded: source {source}"


def feature_page(service: str, source: str | None = None) -> Callable[[Stack], str]:
    """The first feature of the source that fired: its API record and its HTML page."""

    def call(stack: Stack) -> str:
        src = source or stack.state["source"]
        for index in range(64):
            feature = stack.get(service, f"/api/feature/{MODEL}/{src}/{index}")
            if feature["activations"]:
                break
        else:
            raise CheckFailed(f"none of the first 64 features of {src} has examples")
        page = stack.request(service, "GET", f"/{MODEL}/{src}/{index}").decode()
        if src not in page:
            raise CheckFailed(f"the page of {src}/{index} does not name its source")
        stack.state["index"] = index
        return (
            f"feature page /{MODEL}/{src}/{index}: {len(feature['activations'])} examples, "
            f"max activation {feature['maxActApprox']:.2f}, {len(page):,} bytes of HTML"
        )

    return call


def neuron_activation(stack: Stack) -> str:
    """One MLP neuron's activation on every token (served without any SAE loaded)."""
    body = {"prompt": PROMPT, "model": MODEL, "source": "6-neurons", "index": 0}
    result = stack.post("inference", "/v1/activation/single", body)
    values = result["activation"]["values"]
    if len(values) != len(result["tokens"]):
        raise CheckFailed(f"{len(values)} values for {len(result['tokens'])} tokens")
    return f"activation of 6-neurons/0 on {len(values)} tokens, max {max(values):.3f}"


def explain_and_search(stack: Stack) -> str:
    """The feature explained offline (stored with its embedding), then found by searching."""
    src, index = stack.state["source"], stack.state["index"]
    explained = stack.post(
        "autointerp",
        "/v1/explain/feature",
        {"model_id": MODEL, "source_id": src, "index": index, "method": "offline"},
    )
    query = {"query": explained["description"], "model_id": MODEL, "source_ids": [src]}
    results = stack.post("autointerp", "/v1/search/explanations", query)["results"]
    if not any(r["index"] == index for r in results):
        raise CheckFailed(f"searching {explained['description']!r} did not find feature {index}")
    return f"explained {src}/{index} as {explained['description']!r}; search finds it"


def demo_activation(stack: Stack) -> str:
    """The demo feature's activation on new text, through the web API (inference behind it)."""
    feature = {"modelId": MODEL, "layer": "6-res-demo", "index": stack.state["index"]}
    result = stack.post("demo", "/api/activation/new", {"feature": feature, "customText": PROMPT})
    n_tokens, top = len(result["tokens"]), result["maxValue"]
    return f"activation of 6-res-demo/{feature['index']} on {n_tokens} tokens, max {top:.3f}"


def demo_search(stack: Stack) -> str:
    """Explanations searched by meaning, through the web API (autointerp behind it)."""
    query = {"modelId": MODEL, "layers": ["6-res-demo"], "query": "taxes and the economy"}
    result = stack.post("demo", "/api/explanation/search", query)
    if not result["results"]:
        raise CheckFailed("the demo's explanation search found nothing")
    top = result["results"][0]["description"]
    return f"search {query['query']!r}: {result['resultsCount']} hits, top {top!r}"


def graph_prompt(stack: Stack) -> str:
    """The graph service's prompt parsing (its model's tokenizer) and busy check (its database).

    A graph itself needs a transcoder set trained first (hours on CPU), so none is traced."""
    parsed = stack.post("graph", "/parse-chat-prompt", {"prompt": PROMPT})
    if parsed["is_chat"] or parsed["prompt"] != PROMPT:
        raise CheckFailed(f"a plain prompt parsed as {parsed}")
    busy = stack.get("graph", "/check-busy")["busy"]
    return f"parsed a plain prompt (not chat); busy: {busy}"


@dataclass(frozen=True)
class Call:
    service: str
    run: Callable[[Stack], str]


@dataclass(frozen=True)
class StackCheck:
    files: list[str]
    calls: list[Call]
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 900.0


STACKS = {
    "docker-compose.yaml": StackCheck(
        ["docker-compose.yaml"],
        [
            Call("trainer", train_and_dashboards),
            Call("webapi", feature_page("webapi")),
            Call("autointerp", explain_and_search),
            Call("inference", neuron_activation),
            Call("graph", graph_prompt),
        ],
    ),
    # The demo builds its SAE before it serves (an hour at the full size on two busy
    # cores): a smaller SAE on fewer tokens keeps that to minutes.
    "docker-compose.demo.yaml": StackCheck(
        ["docker-compose.demo.yaml"],
        [
            Call("demo", feature_page("demo", "6-res-demo")),
            Call("demo", demo_activation),
            Call("demo", demo_search),
        ],
        env={
            "INTERPEDIA_DEMO_D_SAE": "1024",
            "INTERPEDIA_DEMO_TRAIN_TOKENS": "50000",
            "INTERPEDIA_DEMO_DASHBOARD_PROMPTS": "128",
            "INTERPEDIA_DEMO_SCORE_SAMPLE": "10",
        },
        ready_timeout=3600.0,
    ),
}


def check(check: StackCheck, keep: bool) -> None:
    env = {k: os.environ.get(k, v) for k, v in check.env.items()}
    stack = Stack(check.files, env)
    name = " + ".join(check.files)
    print(f"==> {name}: build", flush=True)
    started = time.monotonic()
    stack.compose("build", "--quiet", capture=True)
    print(f"  built in {time.monotonic() - started:.0f}s", flush=True)
    try:
        print(f"==> {name}: up (from empty volumes)", flush=True)
        started = time.monotonic()
        try:
            stack.compose("up", "--detach", "--quiet-pull", capture=True)
        except CheckFailed as exc:
            raise CheckFailed(f"{exc}\n{stack.diagnose()}") from None
        stack.wait_ready(started, check.ready_timeout)
        print(f"==> {name}: one call per service", flush=True)
        for call in check.calls:
            started = time.monotonic()
            line = call.run(stack)
            print(f"  {call.service:<11} {line} ({time.monotonic() - started:.1f}s)", flush=True)
    finally:
        if not keep:
            print(f"==> {name}: down", flush=True)
            stack.compose("down", "--volumes", "--remove-orphans", capture=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="*", help=f"compose files (default: {', '.join(STACKS)})")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    unknown = set(args.stacks) - set(STACKS)
    if unknown:
        parser.error(f"no check for {', '.join(sorted(unknown))}; known: {', '.join(STACKS)}")
    for name in args.stacks or STACKS:
        try:
            check(STACKS[name], args.keep)
        except CheckFailed as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    print("compose-check: every service healthy and answering")
    return 0


if __name__ == "__main__":
    sys.exit(main())
