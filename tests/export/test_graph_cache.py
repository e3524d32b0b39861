"""Traced graphs reused: in one process, and between processes from the graph cache on disk
(tdpcr_edge.export.graph_cache), only for the same weights, options, sources and libraries."""

from __future__ import annotations

import os

import pytest
import torch

import tdpcr_edge.export.graph_cache as gc
import tdpcr_edge.export.onnx_graph as og
from tdpcr_edge.export.onnx_graph import export_onnx
from tdpcr_edge.train.checkpoint import load_checkpoint


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "graphs"
    monkeypatch.setenv(gc.ENV, str(folder))
    return folder


def test_a_graph_is_traced_once_then_reused_in_process_and_from_disk(random_checkpoint, cache, monkeypatch):
    model = load_checkpoint(random_checkpoint).build()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # weights no other test exports: this test traces it
    calls = []
    real = og._export
    monkeypatch.setattr(og, "_export", lambda *a: calls.append(a[1]) or real(*a))
    monkeypatch.setattr(og, "_EXPORTED", {})
    first, again = export_onnx(model, tile=32), export_onnx(model, tile=32)
    assert calls == [32] and first == again and first is not again
    assert len(list(cache.glob("*.graph"))) == 1
    monkeypatch.setattr(og, "_EXPORTED", {})  # as a fresh process starts
    assert export_onnx(model, tile=32) == first and calls == [32]
    monkeypatch.setenv(gc.ENV, "off")
    monkeypatch.setattr(og, "_EXPORTED", {})
    monkeypatch.setattr(og, "_export", lambda *a: calls.append(a[1]) or first)
    export_onnx(model, tile=32)
    assert calls == [32, 32]  # no cache: traced again


def test_two_exports_of_one_missing_graph_at_once_trace_it_once(random_checkpoint, cache, monkeypatch):
    """Two exporters (threads here, xdist workers or CLI processes in use: the lock is a file
    lock, which two handles contend for as two processes do) miss the same graph at once: the
    first traces it, the second waits and reads the first's entry."""
    import threading
    import time

    import onnx
    from onnx import TensorProto, helper

    x, y = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]), helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]))
    calls, both_missed, local = [], threading.Barrier(2), threading.local()

    def traced(*a):
        calls.append(a[1])
        time.sleep(1.0)  # the other exporter is at the lock by now
        return graph

    real_load = gc.load

    def load(key):  # each exporter's first look finds the graph missing before either traces
        data = real_load(key)
        if not getattr(local, "looked", False):
            local.looked = True
            both_missed.wait(10)
        return data

    monkeypatch.setattr(og, "_export", traced)
    monkeypatch.setattr(gc, "load", load)
    # The fake graph is kept in memory under the real checkpoint's key: never beyond this test.
    monkeypatch.setattr(og, "_EXPORTED", {})
    model, results = load_checkpoint(random_checkpoint).build(), []

    def one():
        og._EXPORTED.pop(og._export_key(model, 32, False, True), None)  # as two processes: neither sees the other's in memory
        results.append(export_onnx(model, tile=32))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert calls == [32] and results == [graph, graph]
    assert isinstance(results[0], onnx.ModelProto) and len(list(cache.glob("*.graph"))) == 1


def test_a_cache_that_cannot_hold_a_lock_still_traces(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(gc.ENV, str(blocker / "graphs"))
    ran = []
    with gc.tracing("k"):
        ran.append(1)
    assert ran == [1]


def test_the_key_changes_with_weights_tile_and_plugin(random_checkpoint):
    model = load_checkpoint(random_checkpoint).build()
    key = og._export_key(model, 32, False, True)
    assert key == og._export_key(load_checkpoint(random_checkpoint).build(), 32, False, True)
    assert (
        len({key, og._export_key(model, 64, False, True), og._export_key(model, 32, True, True), og._export_key(model, 32, False, False)})
        == 4
    )
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert og._export_key(model, 32, False, True) != key


def test_the_fingerprint_changes_with_any_traced_source(tmp_path):
    root = tmp_path / "pkg"
    (root / "model").mkdir(parents=True)
    (root / "model" / "net.py").write_text("x = 1\n")
    (root / "contract.py").write_text("OP = 'TDP_PGF'\n")
    (root / "data").mkdir()
    (root / "data" / "io.py").write_text("y = 1\n")
    sources = ("model", "contract.py")
    first = gc.code_fingerprint(root, sources)
    (root / "data" / "io.py").write_text("y = 2\n")
    gc.code_fingerprint.cache_clear()
    assert gc.code_fingerprint(root, sources) == first  # not a traced source
    for path, text in ((root / "model" / "net.py", "x = 2\n"), (root / "contract.py", "OP = 'X'\n"), (root / "model" / "new.py", "")):
        path.write_text(text)
        gc.code_fingerprint.cache_clear()
        assert gc.code_fingerprint(root, sources) != first
        first = gc.code_fingerprint(root, sources)
    gc.code_fingerprint.cache_clear()
    assert gc.code_fingerprint() != first  # the package's own sources and the libraries' versions


def test_a_damaged_entry_is_removed_and_reads_as_missing(cache):
    gc.store("k", b"graph bytes")
    assert gc.load("k") == b"graph bytes"
    entry = cache / "k.graph"
    entry.write_bytes(entry.read_bytes()[:-3])
    assert gc.load("k") is None and not entry.exists()


def test_the_newest_entries_are_kept(cache, monkeypatch):
    monkeypatch.setattr(gc, "KEEP", 2)
    for i, key in enumerate("abc"):
        gc.store(key, key.encode())
        os.utime(cache / f"{key}.graph", (1000 + i, 1000 + i))
    gc.store("d", b"d")
    assert sorted(p.stem for p in cache.glob("*.graph")) == ["c", "d"]
    assert gc.load("a") is None and gc.load("c") == b"c"


def test_a_cache_that_cannot_be_written_costs_only_the_trace(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(gc.ENV, str(blocker / "graphs"))
    gc.store("k", b"x")  # no error
    assert gc.load("k") is None
    monkeypatch.setenv(gc.ENV, "off")
    assert gc.cache_dir() is None and gc.load("k") is None
    monkeypatch.delenv(gc.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gc.cache_dir() == tmp_path / "xdg" / "tdpcr-edge" / "graphs"
