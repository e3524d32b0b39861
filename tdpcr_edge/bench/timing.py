"""How `tdpcr-edge bench` times its rows: each row as it runs alone, in blocks, the blocks
rotated over rounds.

A row's latency is what a user gets running that runner alone. Timing rows call by call in
turn (round-robin) measures something else: a runtime whose idle worker threads keep spinning
after a call (ONNX Runtime's default) takes the cores from the row timed next, so a row read
slower the more such neighbours it had. Blocks give each row the machine to itself: a block is
one untimed call, which absorbs whatever the previous row left running and brings the row's
own caches back, then consecutive timed calls. Rotating the order of the blocks over rounds
spreads slow spells of a shared host over every row. A slow spell moves a whole block at once,
so a round far slower than the row's best is left out (``kept_rounds``), and the kept rounds'
medians show how much the host still moved, which is what decides whether two rows can be told
apart (``tied`` in ``report.rows``).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

DEFAULT_ROUNDS = 5
# A round whose median is this much slower than the row's best round ran in a slow spell of
# the host (another tenant on the same physical core, a neighbour's burst): the whole block
# moves together, by 1.5-2x on the shared machines this was built on, so such rounds say
# nothing about the row and are left out of its figures.
DISTURBED = 1.10


@dataclass
class RowTimes:
    """One row's timed calls (milliseconds), block by block, one block per round."""

    blocks: list[list[float]] = field(default_factory=list)

    @property
    def calls_ms(self) -> list[float]:
        return [t for block in self.blocks for t in block]

    @property
    def round_p50s(self) -> list[float]:
        return [float(np.median(block)) for block in self.blocks]


def block_sizes(iterations: int, rounds: int) -> list[int]:
    """Timed calls per round: ``iterations`` split as evenly as possible, earlier rounds
    taking the remainder; never a round without a call."""
    rounds = max(1, min(rounds, iterations))
    base, extra = divmod(iterations, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def block_order(rows: int, round_index: int) -> list[int]:
    """The rows' order in round ``round_index``: rotated by one each round, so no row is
    always timed first or always right after the same neighbour."""
    return [(round_index + j) % rows for j in range(rows)]


def time_rows(
    calls: Sequence[Callable[[int], object]],
    warmup: int,
    iterations: int,
    rounds: int = DEFAULT_ROUNDS,
    sync: Callable[[], None] | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> list[RowTimes]:
    """Time each of ``calls`` (``call(i)`` runs the row's i-th call: the caller picks the tile)
    as it runs alone: ``iterations`` timed calls per row in ``rounds`` blocks. Every block starts
    with one untimed call; the first also with ``warmup`` more. ``sync`` waits for the device
    after each timed call (CUDA); ``on_round(r, rounds)`` reports progress. The collector is held
    off inside a block so that a collection of another row's garbage is not billed to this one."""
    sizes = block_sizes(iterations, rounds)
    out = [RowTimes() for _ in calls]
    next_call = [0] * len(calls)
    for r, size in enumerate(sizes):
        if on_round:
            on_round(r, len(sizes))
        for k in block_order(len(calls), r):
            call, times = calls[k], out[k]
            gc.collect()
            gc.disable()
            try:
                for _ in range(1 + (warmup if r == 0 else 0)):
                    call(next_call[k])
                    next_call[k] += 1
                if sync:
                    sync()
                block = []
                for _ in range(size):
                    start = time.perf_counter()
                    call(next_call[k])
                    if sync:
                        sync()
                    block.append((time.perf_counter() - start) * 1e3)
                    next_call[k] += 1
            finally:
                gc.enable()
            times.blocks.append(block)
    return out


def kept_rounds(blocks: Sequence[Sequence[float]]) -> list[int]:
    """The rounds that ran undisturbed: those whose median is within ``DISTURBED`` of the
    fastest round's."""
    medians = [float(np.median(b)) for b in blocks]
    best = min(medians)
    return [r for r, m in enumerate(medians) if m <= best * DISTURBED]


def latency_fields(blocks: Sequence[Sequence[float]]) -> dict:
    """A row's latency from its blocks of timed calls: p50, p25-p75 and p95 over the calls of
    the undisturbed rounds (``kept_rounds``), every round's median (``latency_ms_rounds``) and
    the indices of the rounds kept (``rounds_kept``); rows whose spreads overlap are tied (``report.rows.tied``)."""
    keep = kept_rounds(blocks)
    a = np.asarray([t for r in keep for t in blocks[r]], dtype=float)
    return {
        "latency_ms_p50": float(np.percentile(a, 50)),
        "latency_ms_p25": float(np.percentile(a, 25)),
        "latency_ms_p75": float(np.percentile(a, 75)),
        "latency_ms_p95": float(np.percentile(a, 95)),
        "tiles_per_s": float(len(a) / (a.sum() / 1e3)),
        "latency_ms_rounds": [float(np.median(b)) for b in blocks],
        "rounds_kept": keep,
    }
