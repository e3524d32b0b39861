"""The Ray engine of ``archive.run``: actors that each hold one runner and pull scenes.

Ray does the cluster work: placing actors with their CPU and GPU share, restarting an actor
that died (``max_restarts``) and running its unfinished scene again (``max_task_retries``).
This module only keeps every actor busy: an actor gets its next scene when it returns one.
Ray's token authentication is left as Ray sets it (on by default for local instances since
Ray 2.59; a cluster's nodes share the token, docs/streaming.md)."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..probe import cpu_cores
from .job import STATE, ArchiveOptions, process_scene

NAMESPACE = "tdpcr-edge"


class SceneWorker:
    """One Ray actor: a runner opened once (the model stays loaded between scenes)."""

    def __init__(self, opts: ArchiveOptions, name: str):
        from ..stream import open_runner
        from ..stream.options import default_workers

        self.opts, self.name = opts, name
        # The actor computes on its CPU share, not on every core of the node: OMP_NUM_THREADS
        # caps cpu_cores() (every runner's thread count) and torch's pool is set to match.
        threads = max(1, int(opts.cpus_per_worker))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
        self.runner, self.meta = open_runner(opts.stream.get("model"), opts.stream.get("backend", "auto"), opts.stream.get("public_key"))
        self.workers = self.runner.share_cpu(opts.stream.get("workers") or default_workers())
        self.label = f"{socket.gethostname()}:{os.getpid()} ({name})"

    def ready(self) -> str:
        self.runner.activate()
        return self.label

    def run(self, job: dict, key: str) -> dict:
        marker = Path(self.opts.out) / STATE / f"{job['name']}.worker"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(self.name)
        return process_scene(job, self.opts, key, (self.runner, self.meta, self.workers), self.label)


def connect(address: str) -> bool:
    """Join or start Ray; True when this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(num_cpus=cpu_cores(), include_dashboard=False, log_to_driver=False, namespace=NAMESPACE)
        else:
            ray.init(address=address, log_to_driver=False, namespace=NAMESPACE)
    except ConnectionError as exc:
        raise ConfigError(
            f"--ray {address}: no Ray cluster answered ({str(exc).splitlines()[0]}); start one with `ray start --head` or use --ray local"
        ) from None
    return True


def run_on_ray(todo: list[dict], opts: ArchiveOptions, keys: dict, done: Callable[[dict], None]) -> dict:
    import ray

    t0 = time.perf_counter()
    started = connect(opts.ray)
    actors = []
    try:
        cpus = ray.cluster_resources().get("CPU", 1)
        n = min(len(todo), opts.workers or max(1, int(cpus // max(opts.cpus_per_worker, 1e-9))))
        remote = ray.remote(
            num_cpus=opts.cpus_per_worker, num_gpus=opts.gpus_per_worker, max_restarts=-1, max_task_retries=opts.max_retries
        )(SceneWorker)
        run_id = uuid.uuid4().hex[:8]
        names = [f"tdpcr-archive-{run_id}-{i}" for i in range(n)]
        actors = [remote.options(name=name, namespace=NAMESPACE).remote(opts, name) for name in names]
        labels = ray.get([a.ready.remote() for a in actors])
        startup = time.perf_counter() - t0
        pending, inflight = deque(todo), {}

        def submit(actor) -> None:
            job = pending.popleft()
            inflight[actor.run.remote(job, keys[job["name"]])] = (actor, job)

        for actor in actors[: len(pending)]:
            submit(actor)
        while inflight:
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            actor, job = inflight.pop(ref)
            try:
                row = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the actor died more often than max_retries allows
                attempts = Path(opts.out) / STATE / f"{job['name']}.attempts"
                row = {
                    "name": job["name"],
                    "status": "failed",
                    "worker": None,
                    "attempts": int(attempts.read_text()) if attempts.exists() else 0,
                    "error": f"its worker was lost {opts.max_retries + 1} times ({type(exc).__name__}); see the Ray logs",
                }
            done(row)
            if pending:
                submit(actor)
        busy = time.perf_counter() - t0 - startup
        return {
            "engine": f"ray {ray.__version__}",
            "workers": n,
            "startup_s": round(startup, 3),
            "busy_s": round(busy, 3),
            "worker_labels": labels,
        }
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()
