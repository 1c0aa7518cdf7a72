"""`make demo` (scripts/demo.sh) as a newcomer runs it, but non-interactively (--once) and
against the test plane, so the first-run experience cannot rot: the example repository is
served, tidal is bootstrapped from it and in sync, the application arrives, and the change the
demo tells the user to make arrives too."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from testenv.git_repos import run_git
from tests.cli_process import tidal
from tests.controller_process import run_controller
from tests.e2e.test_cli_bootstrap import remove_bootstrap, unique_namespace
from tests.kustomization_helpers import get_or_none, wait_gone
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
APP_NAMESPACE = "tidal-demo"  # fixed by examples/demo/apps/hello
GREETING = f"/api/v1/namespaces/{APP_NAMESPACE}/configmaps/greeting"


async def _demo(*args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["TIDAL_PYTHON"] = sys.executable
    proc = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "demo.sh"),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 240)
    except TimeoutError:
        proc.terminate()  # the script stops what it started
        out, _ = await proc.communicate()
        pytest.fail(f"the demo did not finish:\n{out.decode(errors='replace')}")
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.fixture
async def demo_namespace(kube: Kube) -> AsyncIterator[str]:
    # The application's namespace has a fixed name: one still terminating after an earlier
    # run would refuse what the demo applies.
    app = await get_or_none(kube, f"/api/v1/namespaces/{APP_NAMESPACE}")
    if app is not None and app["metadata"].get("deletionTimestamp"):
        await wait_gone(kube, f"/api/v1/namespaces/{APP_NAMESPACE}", within=120)
    namespace = unique_namespace("demo")
    yield namespace
    await remove_bootstrap(kube, namespace, namespaces=[APP_NAMESPACE])


async def test_the_demo_syncs_a_cluster_from_the_example_repository(
    cluster: Any, kube: Kube, demo_namespace: str, tmp_path: Path
) -> None:
    namespace, state = demo_namespace, tmp_path / "demo"
    code, out = await _demo(
        "--once", "--kubeconfig", str(cluster.kubeconfig),
        "--namespace", namespace, "--state-dir", str(state),
    )  # fmt: skip
    assert code == 0, out
    lines = out.splitlines()
    assert "✔ all components are healthy" in lines
    for kind in ("gitrepository", "kustomization"):
        row = next(line for line in lines if f"\t{kind}/{namespace}" in line)
        assert [cell.strip() for cell in row.split("\t")][3:5] == ["False", "True"], row
    assert "greeting: Hello from Git!" in lines
    password = (state / "git-password").read_text().strip()
    assert password not in out
    assert not (state / "git-server.json").exists(), "the Git server was not stopped"
    greeting = await kube.get(GREETING)
    assert greeting["data"] == {"message": "Hello from Git!"}

    # What the demo tells the user to do next, done the way it says.
    work = state / "work"
    assert f"  cd {work}" in lines
    printed = next(line.split() for line in lines if " reconcile kustomization " in line)
    reconcile = printed[-6:]
    assert reconcile == ["reconcile", "kustomization", namespace, "-n", namespace, "--with-source"]
    configmap = work / "apps" / "hello" / "configmap.yaml"
    configmap.write_text(configmap.read_text().replace("Hello from Git!", "Hello again!"))
    run_git(["commit", "-qam", "Say hello again"], cwd=work)
    # The demo stopped its Git server; a second one on the same state serves the same
    # repository at the same address, so the working copy pushes as before.
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "testenv", "git-serve", "--dir", str(state),
        "--seed", str(ROOT / "examples" / "demo"),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        info = state / "git-server.json"
        for _ in range(100):
            if info.exists():
                break
            await asyncio.sleep(0.1)
        assert json.loads(info.read_text())["url"] in out
        run_git(["push", "-q"], cwd=work)
        (tmp_path / "controller").mkdir()
        with run_controller(cluster.kubeconfig, tmp_path / "controller"):
            result = await tidal(cluster.kubeconfig, *reconcile)
        assert result.code == 0, result.stderr
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 20)
    greeting = await get_or_none(kube, GREETING)
    assert greeting is not None and greeting["data"] == {"message": "Hello again!"}
