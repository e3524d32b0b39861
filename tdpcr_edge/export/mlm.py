"""The artifact described as a STAC item with the Machine Learning Model extension (``mlm.json``
beside the manifest), so a catalogue can list the model as it lists scenes: its inputs with band
names and normalisation, its outputs (the reconstruction, and where the architecture has them the
land-cover classes with their colours, the SAR reliance, the per-band variance), framework,
accelerator and precision. Built and read with pystac's
own MLM extension."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

FILE = "mlm.json"
DIMS = ["batch", "bands", "height", "width"]


def mlm_item(manifest: dict, target_kind: str | None) -> dict:
    """The MLM item of an artifact, from its manifest (``target_kind``: the profile's kind, if any)."""
    import pystac
    from pystac.extensions import mlm

    from ..model.registry import get_arch

    n, m = manifest["normalization"], manifest["model"]
    arch = m.get("arch", "tdpcr")
    item = pystac.Item(
        id=f"{arch}-{m['name']}-{manifest['precision']}-{manifest['onnx_sha256'][:12]}",
        geometry=None,
        bbox=None,
        datetime=datetime.fromisoformat(manifest["created"]),
        properties={"description": get_arch(arch).summary},
    )
    sar_min, sar_max = set(n["sar_min_db"]), set(n["sar_max_db"])
    sar_scaling = (
        mlm.ValueScaling.create(mlm.ValueScalingType.MIN_MAX, minimum=sar_min.pop(), maximum=sar_max.pop())
        if len(sar_min) == len(sar_max) == 1
        else None
    )

    def structure(cls, channels: int):
        return cls.create(shape=[-1, channels, -1, -1], dim_order=DIMS, data_type=mlm.DataType.FLOAT32)

    inputs = [
        mlm.ModelInput.create(
            name="optical",
            bands=list(n["optical_bands"]),
            input=structure(mlm.InputStructure, m["optical_bands"]),
            description=f"cloudy multispectral reflectance: DN / {n['optical_scale']:g}, clipped to [0, 1]",
            value_scaling=mlm.ValueScaling.create(mlm.ValueScalingType.SCALE, value=n["optical_scale"]),
        ),
        mlm.ModelInput.create(
            name="sar",
            bands=list(n["sar_bands"]),
            input=structure(mlm.InputStructure, m["sar_bands"]),
            description=f"SAR backscatter in dB, {n['sar_min_db']} .. {n['sar_max_db']} scaled to [0, 1]",
            value_scaling=sar_scaling,
        ),
    ]
    classes = [
        mlm.Classification.create(value=i, name=name, color_hint="{:02X}{:02X}{:02X}".format(*color))
        for i, (name, color) in enumerate(zip(manifest["classes"], manifest["colors"]))
    ]
    described = {
        "reconstruction": dict(
            tasks=[mlm.TaskType.REGRESSION],
            result=structure(mlm.ResultStructure, m["optical_bands"]),
            description="the cloud-free optical image, [0, 1] in the input's scaling",
        ),
        "segmentation": dict(
            tasks=[mlm.TaskType.SEMANTIC_SEGMENTATION],
            result=structure(mlm.ResultStructure, m["num_classes"]),
            description="land-cover class logits",
            classes=classes,
        ),
        "reliance": dict(
            tasks=[mlm.TaskType.REGRESSION],
            result=structure(mlm.ResultStructure, 1),
            description="how much SAR evidence Prompt-Guided Fusion let in, [0, 1]",
        ),
        "uncertainty": dict(
            tasks=[mlm.TaskType.REGRESSION],
            result=structure(mlm.ResultStructure, m["optical_bands"]),
            description="the predicted variance of each reconstructed band (aleatoric uncertainty)",
        ),
    }
    # The outputs this artifact's graph has (its architecture's; manifests before them had three).
    names = [o["name"] for o in manifest.get("outputs") or []] or ["reconstruction", "segmentation", "reliance"]
    outputs = [mlm.ModelOutput.create(name=name, **described[name]) for name in names]
    tasks = [mlm.TaskType.REGRESSION] + ([mlm.TaskType.SEMANTIC_SEGMENTATION] if "segmentation" in names else [])
    ext = mlm.MLMExtension.ext(item, add_if_missing=True)
    ext.apply(
        name=f"{get_arch(arch).summary.split(':')[0]} {m['name']}",
        architecture=get_arch(arch).summary,
        tasks=tasks,
        input=inputs,
        output=outputs,
        framework="ONNX",
        framework_version=str(manifest.get("opset", "")),
        memory_size=manifest.get("model_bytes"),
        pretrained=True,
        batch_size_suggestion=1,
        accelerator=mlm.AcceleratorType.CUDA if target_kind == "tensorrt" else mlm.AcceleratorType.AMD64,
        accelerator_constrained=False,
        accelerator_summary=(
            f"{manifest['precision']} graph, drift gated on {(manifest.get('runtime') or {}).get('backend', 'ort')}"
            + (f" for target {manifest['target']}" if manifest.get("target") else "")
        ),
    )
    item.add_asset(
        "model",
        pystac.Asset(
            href="model.onnx",
            media_type="application/octet-stream; application=onnx",
            roles=["mlm:model"],
            extra_fields={"mlm:artifact_type": "onnx", "file:checksum": "1220" + manifest["onnx_sha256"]},
        ),
    )
    item.properties["tdpcr:precision"] = manifest["precision"]
    item.properties["tdpcr:drift"] = {k: (manifest.get("drift") or {}).get(k) for k in ("psnr_delta", "miou_delta", "tiles")}
    return item.to_dict(include_self_link=False)


def read_mlm(folder: str | Path):
    """The artifact's MLM item, read back through pystac's MLM extension (its typed accessors)."""
    import json

    import pystac
    from pystac.extensions import mlm

    item = pystac.Item.from_dict(json.loads((Path(folder) / FILE).read_text()))
    return item, mlm.MLMExtension.ext(item)
