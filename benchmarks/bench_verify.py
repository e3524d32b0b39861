"""`tdpcr-edge verify` as an onboard payload runs it at boot: per precision, a fresh process
checking every digest and running the golden set on the artifact's backend (wall time and peak
RSS under /usr/bin/time -v, and verify's own split between digests and the golden set); the
golden set's size; how far verify's golden drift is from the one export measured on the same
tiles (goal: within 0.02 dB and 0.1 mIoU points); and what a digest check costs on our
artifacts and on a 100 MB file.

Run: pytest benchmarks/bench_verify.py --benchmark-only -s
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tdpcr_edge.contract import file_sha256, read_manifest

from .conftest import RESULTS, record

SUITE = "bench_verify"
PRECISIONS = ("fp32", "fp16", "int8", "mixed")
GOALS = {"psnr_agreement_db": 0.02, "miou_agreement_pt": 0.1}


def _summarise(rows: dict) -> dict:
    lines = []
    for p in PRECISIONS:
        r = rows.get(f"verify_{p}")
        if r:
            ok = r["psnr_gap_db"] <= GOALS["psnr_agreement_db"] and r["miou_gap_pt"] <= GOALS["miou_agreement_pt"]
            lines.append(
                f"{p} on {r['backend']}: verify {r['wall_s']:.2f} s wall (digests {r['digests_s'] * 1000:.0f} ms, golden set "
                f"{r['golden_s']:.2f} s), peak RSS {r['max_rss_mb']:.0f} MB; golden set {r['golden_mb']:.2f} MB; drift "
                f"{r['psnr_delta']:+.3f} dB / {r['miou_delta']:+.2f} pt, export's {r['exported_psnr']:+.3f} / {r['exported_miou']:+.2f} "
                f"(agreement goal {'met' if ok else 'MISSED'})"
            )
    d = rows.get("digest")
    if d:
        lines.append(
            f"sha256: our {d['artifact_mb']:.1f} MB int8 artifact in {d['artifact_ms']:.0f} ms; 100 MB in {d['file_100mb_ms']:.0f} ms "
            f"({d['mb_per_s']:.0f} MB/s)"
        )
    return {"goals": GOALS, "lines": lines}


@pytest.fixture(scope="module", autouse=True)
def suite():
    RESULTS.setdefault(SUITE, {"rows": {}})["summarise"] = _summarise


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    for p in PRECISIONS:
        done = subprocess.run(
            [sys.executable, "-m", "tdpcr_edge.cli", "export", "--out", str(root / p), "--precision", p], capture_output=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return root


@pytest.mark.parametrize("precision", PRECISIONS)
def test_verify(benchmark, artifacts, precision, tmp_path):
    art, out = artifacts / precision, tmp_path / "v.json"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "tdpcr_edge.cli", "verify", str(art), "--json", str(out)]
    done = benchmark.pedantic(lambda: subprocess.run(cmd, capture_output=True, text=True), rounds=1, iterations=1)
    assert done.returncode == 0, done.stderr[-2000:]
    r, m = json.loads(out.read_text()), read_manifest(art)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    exported = m["golden"]["drift"]
    record(
        SUITE,
        f"verify_{precision}",
        {
            "wall_s": int(wall.group(2)) * 60 + float(wall.group(3)),
            "max_rss_mb": rss,
            "digests_s": r["seconds"]["digests"],
            "golden_s": r["seconds"]["golden"],
            "backend": r["backend"],
            "golden_mb": sum(m["golden"]["bytes"].values()) / 1e6,
            "golden_npz_mb": m["golden"]["bytes"]["golden.npz"] / 1e6,
            "model_mb": (art / "model.onnx").stat().st_size / 1e6,
            "psnr_delta": r["psnr_delta"],
            "miou_delta": r["miou_delta"],
            "exported_psnr": exported["psnr_delta"],
            "exported_miou": exported["miou_delta"],
            "psnr_gap_db": abs(r["psnr_delta"] - exported["psnr_delta"]),
            "miou_gap_pt": abs(r["miou_delta"] - exported["miou_delta"]),
        },
    )


def test_digest_cost(benchmark, artifacts, tmp_path):
    art = artifacts / "int8"
    files = [p for p in art.rglob("*") if p.is_file()]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(100 * 1000 * 1000))

    def both():
        t0 = time.perf_counter()
        for p in files:
            file_sha256(p)
        t1 = time.perf_counter()
        file_sha256(big)
        return t1 - t0, time.perf_counter() - t1

    a, b = benchmark.pedantic(both, rounds=1, iterations=1)
    record(
        SUITE,
        "digest",
        {
            "artifact_mb": sum(p.stat().st_size for p in files) / 1e6,
            "artifact_ms": a * 1000,
            "file_100mb_ms": b * 1000,
            "mb_per_s": 100 / b,
        },
    )
