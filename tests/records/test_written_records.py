"""The records a person writes (a layout TOML, a target profile, a pairs CSV) and those a run
leaves for the next (a resume journal, an archive scene's run.json), mutated and read through
the readers the CLI uses: a record is used, or is one TdpcrError (the CLI's one line, exit 2),
or, for what a run left behind, is not trusted (the work is done again); never a traceback."""

import csv
import json
import shutil
from types import SimpleNamespace

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdpcr_edge.archive.job import completed
from tdpcr_edge.backends.targets import load_profile, profiles_dir
from tdpcr_edge.data.specs import open_dataset
from tdpcr_edge.errors import ConfigError, DataError, TdpcrError
from tdpcr_edge.stream.journal import Journal
from tests.data import fixtures
from tests.records.test_artifact_records import EXAMPLES, mutate, mutation_strategy

SHIPPED_PROFILES = profiles_dir()  # before a test points TDPCR_PROFILES elsewhere
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def toml_text(d: dict) -> str:
    """TOML of a mutated record: tables inline, None left out (TOML has no null)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a TOML basic string
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items() if x is not None) + "}"

    return "".join(f"{json.dumps(k)} = {value(v)}\n" for k, v in d.items() if v is not None)


@pytest.fixture(scope="module")
def luojia_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("written") / "luojia"
    fixtures.luojia(root, size=16)
    return root


LAYOUT = {
    "legend": "legend.json",
    "num_classes": 6,
    "optical_bands": [],
    "files": {"optical": "cloudy/{name}.tif", "sar": "sar/{name}.tif", "clear": "clear/{name}.tif", "labels": "label/{name}.tif"},
    "splits": {"train": "train.txt", "val": "val.txt", "test": "test.txt"},
}


def test_the_toml_writer_round_trips():
    assert tomllib.loads(toml_text(LAYOUT)) == LAYOUT


@FUZZ
@given(data=st.data())
def test_a_mutated_layout_reads_or_is_one_error(luojia_root, tmp_path, data):
    path, value = data.draw(mutation_strategy(LAYOUT))
    (tmp_path / "layout.toml").write_text(toml_text(mutate(LAYOUT, path, value)))
    try:
        ds = open_dataset(f"luojia:{luojia_root}?layout={tmp_path / 'layout.toml'}")
        ds.read(0)
    except TdpcrError:
        pass


@FUZZ
@given(data=st.data())
def test_a_mutated_target_profile_loads_or_is_one_error(tmp_path, monkeypatch, data):
    name = data.draw(st.sampled_from(["x86-cpu", "jetson-orin-nano-jp6"]))
    record = tomllib.loads((SHIPPED_PROFILES / f"{name}.toml").read_text())
    path, value = data.draw(mutation_strategy(record))
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(toml_text(mutate(record, path, value)))
    monkeypatch.setenv("TDPCR_PROFILES", str(folder))
    try:
        profile = load_profile(name)
        profile.precision_for(), profile.int8_placement_for()
    except TdpcrError:
        pass


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory):
    return fixtures.pairs(tmp_path_factory.mktemp("written") / "pairs", size=16)


@FUZZ
@given(data=st.data())
def test_a_mutated_pairs_list_reads_or_is_one_error(pairs_csv, tmp_path, data):
    with open(pairs_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    record = {"rows": rows}
    path, value = data.draw(mutation_strategy(record))
    rows = mutate(record, path, value).get("rows")
    case = tmp_path / "case"
    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(pairs_csv.parent, case)
    with open(case / "pairs.csv", "w", newline="") as f:
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            header = list(dict.fromkeys(k for r in rows for k in r))
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows([json.dumps(r[k]) if isinstance(r.get(k), (list, dict)) else r.get(k, "") for k in header] for r in rows)
        else:
            f.write(json.dumps(rows))
    try:
        ds = open_dataset(f"pairs:{case / 'pairs.csv'}")
        ds.read(0)
    except TdpcrError:
        pass


def test_a_pairs_list_with_a_typo_or_a_short_row_is_one_line(pairs_csv, tmp_path):
    shutil.copytree(pairs_csv.parent, tmp_path / "p")
    csv_path = tmp_path / "p" / "pairs.csv"
    text = csv_path.read_text()
    csv_path.write_text(text.replace("labels", "lables", 1))
    with pytest.raises(DataError, match=r"pairs\.csv: row 2: unknown key 'lables'"):
        open_dataset(f"pairs:{csv_path}")
    csv_path.write_text(text.replace(",site0", ""))
    with pytest.raises(DataError, match=r"pairs\.csv: row 2 has fewer fields than the header"):
        open_dataset(f"pairs:{csv_path}")


def test_a_layout_with_a_typo_is_one_line(luojia_root, tmp_path):
    (tmp_path / "layout.toml").write_text(toml_text({**LAYOUT, "files": {**LAYOUT["files"], "lables": "label/{name}.tif"}}))
    with pytest.raises(ConfigError, match=r"layout\.toml: unknown key 'files\.lables'"):
        open_dataset(f"luojia:{luojia_root}?layout={tmp_path / 'layout.toml'}")
    (tmp_path / "layout.toml").write_text(toml_text({**LAYOUT, "files": {**LAYOUT["files"], "sar": "sar/scene.tif"}}))
    with pytest.raises(ConfigError, match=r"files\.sar: String should match pattern"):
        open_dataset(f"luojia:{luojia_root}?layout={tmp_path / 'layout.toml'}")


class Scratch:
    """The journal's scratch rasters, present and whole (their own checks are tested with the stream)."""

    def check(self):
        pass


JOURNAL = {
    "schema_version": 1,
    "fingerprint": {"tile": 256, "model": "abc"},
    "band": 0,
    "flushed": 64,
    "strips": [{"band": 0, "y0": 0, "y1": 32}, {"band": 0, "y0": 32, "y1": 64}],
}


@FUZZ
@given(data=st.data(), strict=st.booleans())
def test_a_mutated_journal_is_continued_refused_or_started_over(tmp_path, data, strict):
    path, value = data.draw(mutation_strategy(JOURNAL))
    (tmp_path / "journal.json").write_text(json.dumps(mutate(JOURNAL, path, value)))
    journal = Journal(tmp_path, JOURNAL["fingerprint"], Scratch())
    try:
        resumed = journal.load(strict=strict)
    except TdpcrError:
        assert strict  # --resume=auto (an archive) starts over instead
        return
    assert resumed in (True, False)
    if resumed:
        assert journal.flushed >= 0 and all(s["y1"] >= 0 for s in journal.strips)


def test_a_journal_of_another_schema_version_is_one_line_naming_both(tmp_path):
    (tmp_path / "journal.json").write_text(json.dumps({**JOURNAL, "schema_version": 2}))
    with pytest.raises(DataError, match=r"journal\.json: schema_version: Input should be less than or equal to 1 \(it holds 2\)"):
        Journal(tmp_path, JOURNAL["fingerprint"], Scratch()).load(strict=True)
    assert Journal(tmp_path, JOURNAL["fingerprint"], Scratch()).load(strict=False) is False


RUN = {
    "schema_version": 1,
    "job_key": "k1",
    "outputs": ["reconstruction.tif"],
    "tiles": {"processed": 4, "total": 4},
    "tiles_per_s": 5.0,
    "wall_s": 0.8,
    "accuracy": {
        "model": {"psnr": 30.0, "miou": 50.0},
        "sums": {
            "model": {"se": 1.0, "ae": 1.0, "ssim": 1.0, "sam": 1.0, "px": 10, "bands": 13},
            "input": {"se": 2.0, "ae": 2.0, "ssim": 1.0, "sam": 1.0, "px": 10, "bands": 13},
            "confusion": [[1, 0], [0, 1]],
        },
    },
    "warnings": [],
}


@FUZZ
@given(data=st.data())
def test_a_mutated_run_record_is_trusted_or_the_scene_streamed_again(tmp_path, data):
    from tdpcr_edge.archive.job import _row_figures
    from tdpcr_edge.archive.run import pooled

    path, value = data.draw(mutation_strategy(RUN))
    scene = tmp_path / "scene"
    scene.mkdir(exist_ok=True)
    (scene / "reconstruction.tif").write_bytes(b"")
    (scene / "run.json").write_text(json.dumps(mutate(RUN, path, value)))
    record = completed({"name": "scene"}, SimpleNamespace(out=tmp_path), "k1")
    if record is not None:
        pooled([_row_figures(record)])  # what an archive does with a trusted record
