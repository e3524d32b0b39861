"""STAC items read with pystac: an item written by `synth --layout stac`, mutated in its assets
and properties as real catalogues vary, through the readers `infer` uses (resolve the bands,
open them, read a window): a read or one DataError (the CLI's one line, exit 2), never another
exception."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from tdpcr_edge.data.bands import PRESETS
from tdpcr_edge.data.bandstack import BandStack
from tdpcr_edge.data.inputs import resolve_optical
from tdpcr_edge.data.synth_folders import write_synthetic
from tdpcr_edge.errors import DataError, TdpcrError
from tests.records.test_artifact_records import DELETE, MUTATIONS, mutate, paths

L2A = PRESETS["s2-l2a"]
EXAMPLES = int(os.environ.get("TDPCR_FUZZ_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("stac") / "scenes"
    write_synthetic(root, scenes=1, size=96, seed=3, layout="stac")
    return root / "scene_0000"


def read(item_path):
    inp = resolve_optical(item_path, L2A)
    with BandStack(inp, "optical") as stack:
        return stack.read(window=Window(0, 0, 16, 16))


def test_the_synth_item_reads_through_pystac(scene):
    data = read(scene / "item.json")
    assert data.shape == (len(L2A), 16, 16) and np.isfinite(data).all()
    assert resolve_optical(scene / "item.json", L2A).radiometry == "STAC raster:bands scale/offset"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_item_reads_or_is_one_error(scene, tmp_path, data):
    item = json.loads((scene / "item.json").read_text())
    path, value = data.draw(st.tuples(st.sampled_from(paths(item)), st.sampled_from([DELETE, *MUTATIONS])))
    case = tmp_path / "item.json"
    case.write_text(json.dumps(mutate(item, path, value)))
    shutil.rmtree(tmp_path / "optical", ignore_errors=True)
    shutil.copytree(scene / "optical", tmp_path / "optical")
    try:
        read(case)
    except TdpcrError:
        pass


@pytest.mark.parametrize(
    "path,value,match",
    [
        (("assets", "B02"), None, "not a STAC item we can read"),
        (("assets", "B03", "raster:bands"), [[1, 2]], r"raster:bands\[0\] must be an object"),
        (("assets", "B04", "raster:bands"), 7, "not a STAC item we can read"),
        (("assets", "B05", "raster:bands", 0, "scale"), [0.0001], r"raster:bands\[0\].scale must be a number"),
        (("assets", "B08", "eo:bands", 0, "name"), 8, "not a STAC item we can read"),
        (("properties",), None, "not a STAC item we can read"),
    ],
)
def test_the_issues_item_mutations_are_one_line(scene, tmp_path, path, value, match):
    item = mutate(json.loads((scene / "item.json").read_text()), path, value)
    case = tmp_path / "item.json"
    case.write_text(json.dumps(item))
    shutil.copytree(scene / "optical", tmp_path / "optical")
    with pytest.raises(DataError, match=match):
        read(case)
    proc = subprocess.run(
        [sys.executable, "-m", "tdpcr_edge.cli", "infer", "--optical", str(case), "--sar", str(scene / "sar.tif")]
        + ["--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "item.json" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()
