"""Records a runtime reads (manifest.json, engine.json), mutated as catalogues, hand edits and
bad copies mutate them, through the readers the CLI uses: every outcome is either a run or one
TdpcrError (the CLI's one line and exit 2), never another exception."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdpcr_edge.backends.trt.runner import TrtRunner
from tdpcr_edge.contract import file_digests, read_engine_record, read_manifest, shipped_artifact_path
from tdpcr_edge.errors import CheckpointError, TdpcrError
from tdpcr_edge.stream.options import open_runner

# Per record type: 60 in make test; TDPCR_FUZZ_EXAMPLES=N for a longer run (docs/export.md states its counts).
EXAMPLES = int(os.environ.get("TDPCR_FUZZ_EXAMPLES", "60"))
MUTATIONS = [None, -1, 0, [], {}, "", "x" * 5000, 10**12, 1.5, True, "é✓", [None], {"a": None}]
DELETE = object()


def paths(record, prefix=()):
    """Every key path of a JSON record (list items by index), depth first."""
    out = []
    items = record.items() if isinstance(record, dict) else enumerate(record) if isinstance(record, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += paths(v, (*prefix, k))
    return out


def mutate(record, path, value):
    record = json.loads(json.dumps(record))
    parent = record
    for k in path[:-1]:
        parent = parent[k]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return record


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    art = tmp_path_factory.mktemp("records") / "art"
    shutil.copytree(shipped_artifact_path(), art)
    return art


@pytest.fixture(scope="module")
def engine(tmp_path_factory, artifact):
    """An engine folder whose record is what build-engine writes (model.engine a stand-in: TensorRT is not run)."""
    eng = tmp_path_factory.mktemp("records") / "eng"
    eng.mkdir()
    (eng / "model.engine").write_bytes(b"engine bytes")
    m = read_manifest(artifact)
    record = {
        "schema_version": 1,
        "tensorrt": "10.3.0.30",
        "gpu": {"name": "Orin", "sm": "8.7"},
        "onnx_sha256": m["onnx_sha256"],
        "plugin": {"used": False, "sha256": None, "library": None},
        "build": {"tile": 256, "max_batch": 1, "workspace_mb": 1024, "timing_cache": None, "plugin_lib": None, "target": None},
        **{k: m[k] for k in ("precision", "model", "normalization", "classes", "colors", "inputs", "outputs", "golden")},
        "files": file_digests(eng),
    }
    (eng / "engine.json").write_text(json.dumps(record))
    return eng


def tile():
    return np.zeros((1, 13, 32, 32), np.float32), np.zeros((1, 2, 32, 32), np.float32)


def mutation_strategy(record):
    return st.tuples(st.sampled_from(paths(record)), st.sampled_from([DELETE, *MUTATIONS]))


def run_manifest(art, tmp_path, record):
    case = tmp_path / "case"
    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(art, case)
    (case / "manifest.json").write_text(json.dumps(record))
    try:
        runner, meta = open_runner(str(case), "auto")
        with runner:
            runner(*tile())
    except TdpcrError:
        pass


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_manifest_runs_or_is_one_error(artifact, tmp_path, data):
    record = json.loads((artifact / "manifest.json").read_text())
    path, value = data.draw(mutation_strategy(record))
    run_manifest(artifact, tmp_path, mutate(record, path, value))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_engine_record_runs_or_is_one_error(engine, tmp_path, data):
    record = json.loads((engine / "engine.json").read_text())
    path, value = data.draw(mutation_strategy(record))
    case = tmp_path / "case"
    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(engine, case)
    (case / "engine.json").write_text(json.dumps(mutate(record, path, value)))
    try:
        TrtRunner(case)(*tile())  # without TensorRT a valid record ends in MissingDependency, a TdpcrError
    except TdpcrError:
        pass


@pytest.mark.parametrize(
    "path,value,match",
    [
        (("normalization", "optical_bands"), None, "normalization.optical_bands: Input should be a valid list"),
        (("normalization",), -1, "normalization: Input should be a valid dictionary"),
        (("model", "num_classes"), [], "model.num_classes: Input should be a valid integer"),
        (("classes",), ["water"], "classes"),
        (("colors", 0), [0, 100], "colors.0: List should have at least 3 items"),
    ],
)
def test_the_issues_mutations_are_one_line_naming_the_key(artifact, tmp_path, path, value, match):
    case = tmp_path / "art"
    shutil.copytree(artifact, case)
    (case / "manifest.json").write_text(json.dumps(mutate(json.loads((artifact / "manifest.json").read_text()), path, value)))
    with pytest.raises(CheckpointError, match=match):
        read_manifest(case)
    proc = subprocess.run(
        [sys.executable, "-m", "tdpcr_edge.cli", "infer", "--model", str(case), "--optical", "x.tif", "--sar", "y.tif"]
        + ["--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "manifest.json" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_records_written_today_are_accepted(artifact, engine):
    read_manifest(artifact)
    read_engine_record(engine)


def test_every_precisions_records_validate_and_its_mlm_item_reads_back(tmp_path, random_checkpoint):
    """The exporter's records pass their schemas at every precision, and mlm.json reads back
    through pystac's MLM extension with the manifest's bands, classes and outputs."""
    pytest.importorskip("pystac")
    from tdpcr_edge.export import ExportOptions, run_export
    from tdpcr_edge.export.mlm import read_mlm

    for precision in ("fp32", "fp16", "int8", "mixed"):
        art = tmp_path / precision
        run_export(ExportOptions(out=art, precision=precision, checkpoint=random_checkpoint, tile=64, eval_tiles=2, calib_tiles=2))
        m = read_manifest(art)  # validated on read
        item, ext = read_mlm(art)
        assert "https://stac-extensions.github.io/mlm/v1.4.0/schema.json" in item.stac_extensions
        assert [i.name for i in ext.input] == ["optical", "sar"] and ext.input[0].bands == m["normalization"]["optical_bands"]
        assert [o.name for o in ext.output] == ["reconstruction", "segmentation", "reliance"]
        assert [c.name for c in ext.output[1].classes] == m["classes"] and ext.accelerator == "amd64"
        assert item.properties["tdpcr:precision"] == precision and item.assets["model"].href == "model.onnx"
        assert m["files"]["mlm.json"]  # covered by the digests (and by a signature)


def report_json(artifact):
    row = {"backend": "ort", "precision": "fp32", "variant": "", "device": "cpu", "within_budget": True, "model_mb": 1.2}
    timing = {
        "latency_ms_p50": 10.0,
        "latency_ms_p25": 9.5,
        "latency_ms_p75": 10.5,
        "latency_ms_rounds": [10.0, 10.2],
        "rounds_kept": [0, 1],
    }
    fast = {**row, **timing, "psnr_delta": 0.0, "miou_delta": 0.0, "model_path": str(artifact)}
    slow = {**fast, "latency_ms_p50": 20.0, "latency_ms_p25": 19.0, "latency_ms_p75": 21.0, "precision": "fp16"}
    return {"rows": [fast, slow], "budget": {"psnr": 0.3, "miou": 1.0}, "date": "2026-12-05"}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_report_picks_a_row_or_is_one_error(artifact, tmp_path, data):
    from tdpcr_edge.backends.factory import from_report

    record = report_json(artifact)
    path, value = data.draw(mutation_strategy(record))
    case = tmp_path / "report.json"
    case.write_text(json.dumps(mutate(record, path, value)))
    try:
        from_report(case)
    except TdpcrError:
        pass


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_legend_reads_or_is_one_error(tmp_path, data):
    from tdpcr_edge.data.scenes import read_legend

    record = {"classes": ["water", "tree cover", "cropland"], "colors": [[0, 100, 200], [0, 100, 0], [240, 150, 255]]}
    path, value = data.draw(mutation_strategy(record))
    (tmp_path / "legend.json").write_text(json.dumps(mutate(record, path, value)))
    try:
        read_legend(tmp_path)
    except TdpcrError:
        pass


def test_a_report_and_a_legend_of_the_wrong_shape_are_one_line(artifact, tmp_path):
    from tdpcr_edge.backends.factory import from_report
    from tdpcr_edge.data.scenes import read_legend
    from tdpcr_edge.errors import DataError

    report = report_json(artifact)
    report["rows"][0]["latency_ms_p50"] = "fast"
    (tmp_path / "report.json").write_text(json.dumps(report))
    with pytest.raises(DataError, match=r"report\.json: rows\.0\.latency_ms_p50"):
        from_report(tmp_path / "report.json")
    assert from_report((tmp_path / "ok.json", (tmp_path / "ok.json").write_text(json.dumps(report_json(artifact))))[0])[1] == "ort"
    (tmp_path / "legend.json").write_text(json.dumps({"classes": ["a", "b"], "colors": [[0, 0, 0]]}))
    with pytest.raises(DataError, match=r"legend\.json: .*colors \(1\) must have one entry per class \(2\)"):
        read_legend(tmp_path)
