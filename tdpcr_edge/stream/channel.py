"""What the scene stream's threads share: the bounded queues between them, the events they
wait on and the errors they hand the main thread. Every wait checks ``stop``, so a failure in
any stage ends the others promptly; the main thread raises the first error."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable

from .messages import END

POLL_S = 0.2  # how often a waiting stage looks at ``stop``


class Channel:
    """``tiles``: reader -> inference (``TileRead`` and markers); ``results``: inference ->
    writer (``TileInferred`` and markers); ``strips``: writer -> overview thread
    (``StripFinished``), one at a time. ``scratch_ready``: the scratch rasters exist (the
    writer's first strip waits for it); ``levels_final[output]``: that output's overview levels
    are final (its COG copy waits for it), for each of ``outputs`` (the names of the files written)."""

    def __init__(self, queue_depth: int, outputs: Iterable[str] = ()):
        self.tiles: queue.Queue = queue.Queue(maxsize=queue_depth)
        self.results: queue.Queue = queue.Queue(maxsize=queue_depth)
        self.strips: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.scratch_ready = threading.Event()
        self.levels_final = {name: threading.Event() for name in outputs}
        self.errors: list[BaseException] = []

    def put(self, q: queue.Queue, item) -> None:
        """Put ``item``, waiting for room; dropped once the run is stopped."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue, timeout: float = POLL_S):
        """The next item; ``END`` once the run is stopped."""
        while not self.stop.is_set():
            try:
                return q.get(timeout=timeout)
            except queue.Empty:
                continue
        return END

    def poll(self, q: queue.Queue, timeout: float):
        """The next item if one comes within ``timeout``, else None (``END`` once stopped)."""
        if self.stop.is_set():
            return END
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait(self, event: threading.Event) -> bool:
        """Wait for ``event``; False when the run stopped first."""
        while not event.wait(POLL_S):
            if self.stop.is_set():
                return False
        return True

    def guarded(self, stage: Callable[[], None]) -> Callable[[], None]:
        """``stage`` with its failure recorded and the run stopped, for a thread to run."""

        def run():
            try:
                stage()
            except BaseException as exc:  # noqa: BLE001  (handed to the main thread)
                self.errors.append(exc)
                self.stop.set()

        return run
