"""Everything TensorRT: the runner, the checks of an engine against this machine (``compat``),
the engine build (``engine``) and its golden-set gate (``gate``), and a target's check of a
graph (``check``, ``node_rules``)."""
