"""How bench times its rows (tdpcr_edge.bench.timing): each row alone, in blocks rotated over rounds.
Time is a fake clock here, so the method is checked exactly, not a machine's noise."""

import pytest

from tdpcr_edge.bench import timing
from tdpcr_edge.bench.timing import block_order, block_sizes, latency_fields, time_rows
from tdpcr_edge.report.rows import tied


def test_block_sizes_split_the_calls_evenly():
    assert block_sizes(12, 3) == [4, 4, 4]
    assert block_sizes(20, 3) == [7, 7, 6]
    assert block_sizes(2, 3) == [1, 1]  # never an empty block
    assert block_sizes(5, 1) == [5]


def test_block_order_rotates():
    assert [block_order(3, r) for r in range(3)] == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]


class Machine:
    """A fake machine: every call costs its row's time; a call right after a call of a
    ``spinner`` row (a runtime whose idle threads keep the cores) costs ``penalty`` more."""

    def __init__(self, cost: dict, spinner: str, penalty: float):
        self.now, self.cost, self.spinner, self.penalty = 0.0, cost, spinner, penalty
        self.last, self.log = None, []

    def clock(self) -> float:
        return self.now / 1e3

    def call(self, row: str):
        def run(i: int):
            self.now += self.cost[row] + (self.penalty if self.last == self.spinner and row != self.spinner else 0.0)
            self.last = row
            self.log.append((row, i))

        return run


@pytest.fixture
def machine(monkeypatch):
    m = Machine({"ort": 10.0, "openvino": 8.0, "torch": 12.0}, spinner="ort", penalty=5.0)
    monkeypatch.setattr(timing.time, "perf_counter", m.clock)
    return m


def test_each_row_is_timed_alone_in_blocks(machine):
    rows = ["ort", "openvino", "torch"]
    out = time_rows([machine.call(r) for r in rows], warmup=2, iterations=6, rounds=3)
    # What a neighbour's spinning threads cost lands on each block's untimed first call only.
    assert [t.calls_ms for t in out] == [pytest.approx([10.0] * 6), pytest.approx([8.0] * 6), pytest.approx([12.0] * 6)]
    assert [t.round_p50s for t in out] == [pytest.approx([10.0] * 3), pytest.approx([8.0] * 3), pytest.approx([12.0] * 3)]
    # Calls of one block are consecutive; each row gets warm-up + 1 untimed first, then 1 untimed per later block.
    blocks = [machine.log[0][0]]
    for (a, _), (b, _) in zip(machine.log, machine.log[1:]):
        if a != b:
            blocks.append(b)
    assert blocks == ["ort", "openvino", "torch", "openvino", "torch", "ort", "torch", "ort", "openvino"]
    assert [sum(1 for r, _ in machine.log if r == row) for row in rows] == [2 + 3 + 6] * 3
    # Each row walks its own tiles in order, across blocks.
    assert [i for r, i in machine.log if r == "openvino"] == list(range(11))


def test_call_by_call_would_have_billed_the_spinner_to_its_neighbour(machine):
    # The old way, one call of each row in turn: openvino always follows ort and pays for it.
    for _ in range(6):
        for row in ("ort", "openvino"):
            start = machine.clock()
            machine.call(row)(0)
            if row == "openvino":
                assert (machine.clock() - start) * 1e3 == pytest.approx(13.0)
    # In blocks it reads its own 8 ms.
    assert time_rows([machine.call("ort"), machine.call("openvino")], 0, 4, 2)[1].calls_ms == pytest.approx([8.0] * 4)


def test_latency_fields():
    f = latency_fields([[10.0] * 10, [10.0] * 9 + [30.0]])
    assert f["latency_ms_p50"] == 10.0
    assert 10.0 < f["latency_ms_p95"] <= 30.0
    assert f["tiles_per_s"] == pytest.approx(20 / 0.22)
    assert f["latency_ms_rounds"] == [10.0, 10.0] and f["rounds_kept"] == [0, 1]


def test_a_round_in_a_slow_spell_of_the_host_is_left_out():
    # The whole block ran 1.9x slower (another tenant on the core): it says nothing about the row.
    f = latency_fields([[26.0, 25.8, 26.2], [49.0, 48.6, 49.5], [25.9, 26.1, 26.0]])
    assert f["latency_ms_p50"] == pytest.approx(26.0) and f["rounds_kept"] == [0, 2]
    assert f["latency_ms_p75"] < 27 and f["latency_ms_rounds"][1] == pytest.approx(49.0)
    # Rounds within DISTURBED of the best all count, slow calls inside them too.
    g = latency_fields([[26.0, 26.0, 40.0], [27.0, 27.5, 27.0]])
    assert g["rounds_kept"] == [0, 1] and g["latency_ms_p95"] > 30


def _row(p25, p50, p75, rounds, kept=None):
    return {
        "backend": "openvino",
        "latency_ms_p25": p25,
        "latency_ms_p50": p50,
        "latency_ms_p75": p75,
        "latency_ms_rounds": rounds,
        "rounds_kept": list(range(len(rounds))) if kept is None else kept,
    }


def test_rows_whose_rounds_overlap_are_tied():
    # Tight blocks, but the host moved between rounds by more than the rows differ.
    a, b = _row(73.5, 73.8, 74.0, [73.8, 78.0, 74.1]), _row(75.0, 75.4, 75.8, [75.4, 75.3, 75.6])
    assert tied(a, b)
    # Apart in every round: told apart.
    c = _row(90.0, 90.5, 91.0, [90.5, 91.0, 92.0])
    assert not tied(a, c)
    # A round left out as disturbed does not tie a row with everything it spans.
    d = _row(25.5, 25.9, 26.1, [49.5, 25.6, 25.7], kept=[1, 2])
    assert not tied(d, _row(33.8, 34.0, 34.2, [34.0, 33.9, 34.1]))
    assert tied(d, _row(33.8, 34.0, 34.2, [34.0, 33.9, 34.1]) | {"rounds_kept": [0, 1, 2], "latency_ms_rounds": [25.6, 33.9, 34.1]})
    # One round says nothing about the host's movement.
    assert not tied(_row(1, 1, 1, [1.0]), _row(2, 2, 2, [1.0]))
