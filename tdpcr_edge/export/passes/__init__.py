"""The passes of ``tdpcr-edge export``, in order, each over one ``export.artifact.Artifact``:

trace      checkpoint -> FP32 ONNX (dynamo exporter, onnxsim), the graph every precision starts from
<precision> the precision registry's ``graph_pass`` for the artifact's precision (fp16, int8, mixed)
gate       the target's check, then the drift against torch FP32 on held-out tiles, against the budget
write      manifest.json, drift.json, model.onnx, checkpoint.pt: atomically, or nothing
"""
