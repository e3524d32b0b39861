"""TensorRT backend. Before it deserialises an engine it checks engine.json against the
running TensorRT, GPU and plugin library and refuses a mismatch in one line. I/O buffers are
allocated once for the engine's largest batch; copies are asynchronous on one stream; the
execution can be captured once as a CUDA graph and replayed. ``last_timing`` separates the
GPU compute time (events around the engine) from the end-to-end time (copies included)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..runner import Runner


@dataclass(frozen=True)
class Buffer:
    name: str
    shape: tuple[int, ...]
    dtype: str
    is_input: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def io_buffers(record: dict, batch: int) -> list[Buffer]:
    """Every engine I/O tensor at ``batch`` and the engine's tile: symbolic dimensions of the
    manifest (batch, height, width) resolved, dtypes as the graph declares them."""
    tile = record["build"]["tile"]
    sizes = {"batch": batch, "height": tile, "width": tile}
    out = []
    for is_input, tensors in ((True, record["inputs"]), (False, record["outputs"])):
        for t in tensors:
            shape = tuple(sizes[d] if isinstance(d, str) else int(d) for d in t["shape"])
            out.append(Buffer(t["name"], shape, t["dtype"], is_input))
    return out


def batches(n: int, max_batch: int) -> list[slice]:
    return [slice(i, min(i + max_batch, n)) for i in range(0, n, max_batch)]


class TrtRunner(Runner):
    name = "trt"

    def __init__(self, engine_dir: str | Path, plugin_lib: str | Path | None = None, cuda_graph: bool = False):
        from ...contract import check_files, read_engine_record

        self.engine_dir = Path(engine_dir)
        self.record = read_engine_record(self.engine_dir)
        # TensorRT never sees an engine that changed after it was built.
        check_files(self.engine_dir, self.record, "engine.json")
        m = self.record["model"]
        self.tile = self.record["build"]["tile"]
        self.max_batch = self.record["build"]["max_batch"]
        # Inputs are padded up to exactly the engine's tile (the base class pads to a multiple).
        super().__init__(self.tile, m["optical_bands"], m["sar_bands"])
        self.plugin_lib = plugin_lib
        self.cuda_graph = cuda_graph
        self.last_timing: dict[str, float] = {}

    def activate_impl(self) -> None:
        from ...contract import file_sha256
        from .compat import CudaApi, check_engine_compat, detect_gpus, find_plugin_library, import_tensorrt

        import_tensorrt()  # one line naming what to install when it is missing
        import tensorrt as trt  # type-checked against tensorrt-stubs

        gpus = detect_gpus()
        if not gpus:
            raise DataError(f"{self.engine_dir}: no CUDA GPU found to run the engine on")
        plugin = find_plugin_library(self.plugin_lib) if self.record["plugin"]["used"] else None
        check_engine_compat(
            self.record, trt.__version__, gpus[0].name, gpus[0].sm, file_sha256(plugin) if plugin else None, where=str(self.engine_dir)
        )
        if plugin is not None:
            trt.get_plugin_registry().load_library(str(plugin))
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine((self.engine_dir / "model.engine").read_bytes())
        if self.engine is None:
            raise DataError(
                f"{self.engine_dir / 'model.engine'}: TensorRT could not deserialise it; rebuild it with `tdpcr-edge build-engine`"
            )
        self.context = self.engine.create_execution_context()
        self.cuda = CudaApi()
        self.stream = self.cuda.stream()
        self.handle = self.cuda.stream_handle(self.stream)
        self.buffers = io_buffers(self.record, self.max_batch)
        self.device = {b.name: self.cuda.malloc(b.nbytes) for b in self.buffers}
        for b in self.buffers:
            self.context.set_tensor_address(b.name, self.cuda.ptr(self.device[b.name]))
        self.start, self.end = self.cuda.event(), self.cuda.event()
        self.graph = None
        self.graph_batch: int | None = None

    def _execute(self, batch: int) -> None:
        if self.cuda_graph and self.graph is not None and self.graph_batch == batch:
            self.cuda.launch_graph(self.graph, self.handle)
            return
        if not self.context.execute_async_v3(self.handle):
            raise DataError(f"{self.engine_dir}: TensorRT execution failed")
        if self.cuda_graph and self.graph_batch != batch:
            # Capture after one plain run, so TensorRT's lazy initialisation stays outside the graph.
            self.cuda.synchronize(self.stream)
            self.cuda.begin_capture(self.handle)
            self.context.execute_async_v3(self.handle)
            self.graph = self.cuda.end_capture(self.handle)
            self.graph_batch = batch

    def infer_impl(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        if optical.shape[2:] != (self.tile, self.tile):
            raise DataError(
                f"{self.engine_dir}: tile {optical.shape[3]}x{optical.shape[2]} is larger than the engine's "
                f"{self.tile}x{self.tile}; use `tdpcr-edge infer`, which cuts scenes into tiles"
            )
        t0 = time.perf_counter()
        compute = 0.0
        outputs: dict[str, list[np.ndarray]] = {b.name: [] for b in self.buffers if not b.is_input}
        for sl in batches(optical.shape[0], self.max_batch):
            n = sl.stop - sl.start
            host_in = {"optical": np.ascontiguousarray(optical[sl]), "sar": np.ascontiguousarray(sar[sl])}
            for name, array in host_in.items():
                self.context.set_input_shape(name, array.shape)
                self.cuda.h2d(self.device[name], array, self.handle)
            self.cuda.record(self.start, self.handle)
            self._execute(n)
            self.cuda.record(self.end, self.handle)
            host_out = {}
            for b in self.buffers:
                if not b.is_input:
                    host_out[b.name] = np.empty((n, *b.shape[1:]), b.dtype)
                    self.cuda.d2h(host_out[b.name], self.device[b.name], self.handle)
            self.cuda.synchronize(self.stream)
            compute += self.cuda.elapsed_ms(self.start, self.end)
            for k, v in host_out.items():
                outputs[k].append(v)
        self.last_timing = {"compute_ms": compute, "end_to_end_ms": 1e3 * (time.perf_counter() - t0)}
        return {k: np.concatenate(v) for k, v in outputs.items()}

    def deactivate_impl(self) -> None:
        for buf in getattr(self, "device", {}).values():
            self.cuda.free(buf)
        self.device = {}
        for name in ("context", "engine", "runtime"):  # released in this order, the context first
            self.__dict__.pop(name, None)


def load(
    path: Path, manifest: dict | None, *, variant: str = "", device: str | None = None, precision: str | None = None, **kwargs
) -> TrtRunner:
    """The registry's entry point: an engine folder."""
    return TrtRunner(path, **kwargs)


def unavailable(combo) -> str | None:
    from ..registry import has_module

    if not (has_module("cuda") or has_module("pycuda")):
        return "neither cuda-python nor pycuda is installed for TensorRT's buffers"
    return None
