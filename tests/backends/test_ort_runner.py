"""ONNX Runtime sessions as the runner makes them: idle threads sleep between calls unless asked."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tdpcr_edge.backends import ort_runner
from tdpcr_edge.backends.ort_runner import OrtRunner

CONFIG = {"widths": [8, 16], "optical_bands": 13, "sar_bands": 2}


def identity_graph() -> onnx.ModelProto:
    """The runner's three outputs from its two inputs, nothing computed."""
    inputs = [
        helper.make_tensor_value_info("optical", TensorProto.FLOAT, ["n", 13, "h", "w"]),
        helper.make_tensor_value_info("sar", TensorProto.FLOAT, ["n", 2, "h", "w"]),
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("reconstruction", "segmentation", "reliance")]
    nodes = [
        helper.make_node("Identity", ["optical"], ["reconstruction"]),
        helper.make_node("Identity", ["sar"], ["segmentation"]),
        helper.make_node("ReduceMean", ["sar"], ["reliance"], axes=[1], keepdims=1),
    ]
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs), opset_imports=[helper.make_opsetid("", 13)])


def spin_entries(runner: OrtRunner) -> tuple[str, str]:
    so = runner.session.get_session_options()
    return so.get_session_config_entry("session.intra_op.allow_spinning"), so.get_session_config_entry("session.inter_op.allow_spinning")


@pytest.mark.parametrize("spinning, expected", [(None, "0"), (False, "0"), (True, "1")])
def test_idle_threads_sleep_unless_asked(spinning, expected):
    with OrtRunner(identity_graph(), CONFIG, threads=2, spinning=spinning) as runner:
        assert spin_entries(runner) == (expected, expected)
        out = runner(np.zeros((1, 13, 8, 8), np.float32), np.ones((1, 2, 8, 8), np.float32))
        assert out["reliance"].shape == (1, 1, 8, 8)


def test_the_default_follows_the_module_setting(monkeypatch):
    monkeypatch.setattr(ort_runner, "SPIN_BETWEEN_CALLS", True)
    with OrtRunner(identity_graph(), CONFIG) as runner:
        assert spin_entries(runner) == ("1", "1")
