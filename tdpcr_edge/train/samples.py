"""The training data pipeline: a run's sample stream, read by a torch DataLoader.

A phase's samples form one stream numbered from 0, and global batch ``s`` is samples
``s*B .. s*B+B-1`` (B = ``--batch``) whatever the number of processes or loader workers.
The batch is cut into micro-batches of ``B / (world size x accumulate)``: rank ``r`` takes,
at accumulation step ``a``, micro-batch ``r*accumulate + a``. One process with
``--accumulate 2`` and two processes with ``--accumulate 1`` therefore compute on the same
micro-batches.

Every random choice derives from (seed, phase, epoch, sample index) and from nothing else
(not the rank, not the loader worker, not the order in which workers finish): which sample
takes each place of an epoch (a permutation per epoch, so every sample is seen once per
epoch, reshuffled), where it is cropped, and which of the eight flips and 90-degree
rotations it gets, applied identically to optical, SAR, target, labels, cloud and valid
mask. So a run resumed at step ``s``, at any world size, reads exactly what an uninterrupted
one would have read.

The synthetic world is generated, not read: its stream is sample ``g`` of the world (phase
2 starting 10,000,000 batches on), with no augmentation, as the shipped model was trained.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..data.sources import BatchSource, SyntheticSource
from ..errors import ConfigError, DataError, TdpcrError

PHASE2_OFFSET = 10_000_000  # batches: phase 2's part of the synthetic stream


def micro_batch(batch: int, world: int, accumulate: int) -> int:
    """Samples per forward pass; the global batch must split evenly."""
    if accumulate < 1:
        raise ConfigError(f"--accumulate must be at least 1, got {accumulate}")
    if batch % (world * accumulate):
        raise ConfigError(
            f"--batch {batch} does not split into {world} process(es) x --accumulate {accumulate}; "
            f"choose a batch that is a multiple of {world * accumulate}"
        )
    return batch // (world * accumulate)


def augment(arrays: dict[str, np.ndarray], k: int, flip: bool) -> dict[str, np.ndarray]:
    """The same rotation by ``k`` x 90 degrees and optional left-right flip on every layer
    (the last two axes are rows and columns)."""
    out = {}
    for name, a in arrays.items():
        a = np.rot90(a, k, axes=(-2, -1))
        if flip:
            a = a[..., ::-1]
        out[name] = np.ascontiguousarray(a)
    return out


class SampleStream(torch.utils.data.Dataset):
    """Item ``g`` of a phase's stream as numpy arrays (the collate stacks them)."""

    def __init__(self, source: BatchSource, phase: int, batch: int, patch: int, seed: int, augment: bool = True):
        self.source, self.phase, self.batch, self.patch, self.seed, self.augment = source, phase, batch, patch, seed, augment

    def __len__(self) -> int:  # unbounded: the batch sampler says which items are read
        return 2**62

    def epoch_of(self, g: int) -> int | None:
        n = getattr(self.source, "dataset", None)
        return None if n is None else g // len(n)

    def __getitem__(self, g: int) -> dict[str, np.ndarray] | TdpcrError:
        # Bad data is returned, not raised: a loader worker would re-raise it wrapped in its
        # own traceback, and the user's one-line error would be lost.
        try:
            return self._item(g)
        except TdpcrError as exc:
            return exc

    def _item(self, g: int) -> dict[str, np.ndarray]:
        if isinstance(self.source, SyntheticSource):
            offset = PHASE2_OFFSET * self.batch if self.phase == 2 else 0
            return self.source.sample(g + offset, self.patch)
        dataset = self.source.dataset
        epoch, place = divmod(g, len(dataset))
        index = int(_permutation(self.seed, self.phase, epoch, len(dataset))[place])
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.phase, epoch, index]))
        s = dataset.read(index)
        path = dataset.samples[index].paths["optical"]
        if s.clear is None:
            raise DataError(f"{path}: sample {s.name} has no clear target; training reconstructs it (pass data with cloud-free references)")
        if s.labels is None:
            if self.phase == 2:  # check_labels says so before training; a list edited since lands here
                raise DataError(f"{path}: sample {s.name} has no labels; {LABELS_HINT}")
            s.labels = np.full(s.valid.shape, 255, np.int64)  # phase 1 reads no labels
        h, w = s.labels.shape
        p = self.patch
        if h < p or w < p:
            raise DataError(f"{path}: sample is {w}x{h}, smaller than the training patch {p}; pass a smaller --patch")
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        win = (slice(y, y + p), slice(x, x + p))
        cloud = s.cloud if s.cloud is not None else np.zeros_like(s.labels, np.float32)
        arrays = {
            "optical": s.optical[(slice(None), *win)],
            "sar": s.sar[(slice(None), *win)],
            "clear": s.clear[(slice(None), *win)],
            "labels": np.where(s.valid, s.labels, 255)[win].astype(np.int64),
            "cloud": cloud[win].astype(np.float32),
            "valid": s.valid[win],
        }
        return augment(arrays, k, flip) if self.augment else arrays


LABELS_HINT = (
    "phase 2 trains the land-cover head on labels: add ?labels=dfc to a sen12mscr: spec (SEN12MS land cover), "
    "a labels column to a pairs list or labels.tif to scene folders, or train --phase 1 only"
)


def check_labels(source: BatchSource, spec: str) -> None:
    """Phase 2 on data without labels: refused before any training, in one line."""
    dataset = getattr(source, "dataset", None)
    if dataset is None:
        return
    bare = next((s for s in dataset.samples if "labels" not in s.paths), None)
    if bare is not None:
        raise DataError(f"{spec}: sample {bare.name} has no labels; {LABELS_HINT}")


@lru_cache(maxsize=4)
def _permutation(seed: int, phase: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, phase, epoch])).permutation(n)


class MicroBatches(Sampler):
    """The stream indices of this rank's micro-batches, step after step from ``start``."""

    def __init__(self, start: int, steps: int, batch: int, rank: int, world: int, accumulate: int):
        self.start, self.steps, self.batch, self.rank, self.accumulate = start, steps, batch, rank, accumulate
        self.micro = micro_batch(batch, world, accumulate)

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accumulate

    def __iter__(self):
        for step in range(self.start, self.steps):
            for a in range(self.accumulate):
                first = step * self.batch + (self.rank * self.accumulate + a) * self.micro
                yield list(range(first, first + self.micro))


def collate(items: list) -> dict[str, torch.Tensor] | TdpcrError:
    """Stack a micro-batch; the first sample's error instead, when one failed to read."""
    bad = next((it for it in items if isinstance(it, TdpcrError)), None)
    if bad is not None:
        return bad
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def checked(batch):
    """Raise the error a micro-batch carries (see ``SampleStream.__getitem__``)."""
    if isinstance(batch, TdpcrError):
        raise batch
    return batch


def loader(stream: SampleStream, sampler: MicroBatches, workers: int = 0, pin_memory: bool = False, prefetch: int = 4) -> DataLoader:
    """One loader per phase: its workers live for the whole phase (across epochs) and read
    ``prefetch`` micro-batches ahead each. Each worker computes on one thread (torch's
    default in loader workers), leaving the cores to the training step."""
    if workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {workers}")
    return DataLoader(
        stream,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        prefetch_factor=prefetch if workers else None,
        persistent_workers=workers > 0,
    )
