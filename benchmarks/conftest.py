"""Shared benchmark plumbing: device description and a results file per suite.

Each suite records its timings in RESULTS[suite]; at the end of the session every suite
that ran writes benchmarks/results/<suite>-<device>-<date>.json with the device, the
method and the ratios measured in that one run."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from tdpcr_edge.probe import device_info

RESULTS: dict[str, dict] = {}
RESULTS_DIR = Path(__file__).parent / "results"


def record(suite: str, key: str, stats: dict, **extra) -> None:
    RESULTS.setdefault(suite, {"rows": {}})["rows"][key] = {**stats, **extra}


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    dev = device_info()
    tag = (dev.get("gpu") or "cpu").lower().replace(" ", "-")
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):  # an ISA-capped run is another machine's figures
        tag += "-" + os.environ["ONEDNN_MAX_CPU_ISA"].lower()
    for suite, data in RESULTS.items():
        summarise = data.pop("summarise", None)
        payload = {"suite": suite, "date": date.today().isoformat(), "device": dev, **data}
        if summarise:
            payload["summary"] = summarise(data["rows"])
        path = RESULTS_DIR / f"{suite}-{tag}-{date.today().isoformat()}.json"
        if path.exists() and json.loads(path.read_text()).get("device") != dev:
            # Another machine's figures of the same day (sessions draw different CPUs): kept.
            best = next((k for k in ("AMX", "AVX-512", "AVX2") if dev.get("isa", {}).get(k)), "base")
            path = path.with_name(f"{suite}-{tag}-{best.lower().replace('-', '')}-{date.today().isoformat()}.json")
        path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\n{suite}: wrote {path}")
        for line in payload.get("summary", {}).get("lines", []):
            print("  " + line)


@pytest.fixture(scope="session")
def bench_record():
    return record
