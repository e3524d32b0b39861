"""Shared benchmark plumbing: device description and a results file per suite.

Each suite records its timings in RESULTS[suite]; at the end of the session every suite
that ran writes benchmarks/results/<suite>-<device>-<date>.json with the device, the
method and the ratios measured in that one run."""

from __future__ import annotations

import json
import os
import platform
from datetime import date
from pathlib import Path

import pytest

RESULTS: dict[str, dict] = {}
RESULTS_DIR = Path(__file__).parent / "results"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict:
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "machine": platform.machine()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def record(suite: str, key: str, stats: dict, **extra) -> None:
    RESULTS.setdefault(suite, {"rows": {}})["rows"][key] = {**stats, **extra}


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    dev = device_info()
    tag = (dev.get("gpu") or "cpu").lower().replace(" ", "-")
    for suite, data in RESULTS.items():
        summarise = data.pop("summarise", None)
        payload = {"suite": suite, "date": date.today().isoformat(), "device": dev, **data}
        if summarise:
            payload["summary"] = summarise(data["rows"])
        path = RESULTS_DIR / f"{suite}-{tag}-{date.today().isoformat()}.json"
        path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\n{suite}: wrote {path}")
        for line in payload.get("summary", {}).get("lines", []):
            print("  " + line)


@pytest.fixture(scope="session")
def bench_record():
    return record
