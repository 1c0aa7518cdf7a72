"""tidal without the `helm` extra, and the SDK from several threads at once."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.unit.test_helm_charts import many_objects_chart, parent_chart


def test_without_the_sdk_engine_import_says_how_to_install() -> None:
    code = (
        "import sys; sys.modules['helm_python'] = None\n"
        "import tidal.helm.chart, tidal.helm.render, tidal.helm.storage, tidal.cli.main\n"
        "try:\n    import tidal.helm.engine\nexcept ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
        "try:\n    tidal.helm.chart.load_chart(b'x')\nexcept ImportError as e:\n"
        "    print(type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "HelmEngineUnavailable Helm support needs the 'helm' extra: pip install 'tidal[helm]'",
        "HelmEngineUnavailable",
    ]


def test_nothing_imports_the_sdk_at_import_time() -> None:
    code = (
        "import sys, tidal.cli.main, tidal.helm.render, tidal.helm.storage\n"
        "print('helm_python' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_concurrent_renders_of_different_charts_are_correct() -> None:
    pytest.importorskip("helm_python")
    from tidal.helm.chart import load_chart
    from tidal.helm.render import render

    parent, many = load_chart(parent_chart()), load_chart(many_objects_chart(60))

    def one(i: int) -> tuple[int, str]:
        chart = parent if i % 2 else many
        values = {"replicas": i, "extra": {"enabled": i % 3 == 0}} if i % 2 else {"salt": str(i)}
        r = render(chart, values, release_name=f"r{i}", namespace="ns", revision=1,
                   is_install=True, is_upgrade=False)  # fmt: skip
        return i, r.manifest

    serial = dict(one(i) for i in range(24))
    with ThreadPoolExecutor(8) as pool:
        parallel = dict(pool.map(one, range(24)))
    assert parallel == serial
    # The same LoadedChart rendered with its subchart on and off gives each its own answer.
    assert "must-not-render" in serial[3] and "must-not-render" not in serial[1]
