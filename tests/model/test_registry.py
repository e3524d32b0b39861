"""The model registry: one row per architecture, what each row promises (sizes, outputs,
parameter counts of the published models), through the library and `tdpcr-edge info`."""

import re

import pytest

from tdpcr_edge.errors import ConfigError
from tdpcr_edge.model import build_model, get_arch, get_config
from tdpcr_edge.model.profile import total_cost
from tdpcr_edge.model.registry import names, outputs_of
from tests.helpers import run_main

# Published parameter counts for 13 + 2 input bands, and how close ours must come.
PUBLISHED = {"dsen2cr": (18_947_341, 0.005), "uncrtaints": (520_218, 0.01), "glfcr": (14_827_373, 0.02)}


def test_every_architecture_has_a_small_and_a_full_size_that_build():
    assert set(names()) >= {"tdpcr", "tdpcr-concat", "dsen2cr", "uncrtaints", "glfcr"}
    for arch in names():
        small = get_config("small", arch)
        assert small.arch == arch and get_config("full", arch).arch == arch
        out = build_model(small).eval()
        assert type(out).__name__ == get_arch(arch).cls and out.config == small


def test_outputs_follow_the_row_and_the_fusion():
    assert outputs_of(get_config("tiny")) == ("reconstruction", "segmentation", "reliance")
    assert outputs_of(get_config("tiny", fusion="concat")) == ("reconstruction", "segmentation")
    assert outputs_of(get_config("small", "tdpcr-concat")) == ("reconstruction", "segmentation")
    assert outputs_of(get_config("small", "dsen2cr")) == ("reconstruction",)
    assert outputs_of(get_config("small", "uncrtaints").to_dict()) == ("reconstruction", "uncertainty")
    assert get_arch("tdpcr").plugin and not get_arch("glfcr").plugin and not get_arch("dsen2cr").segments


def test_an_unknown_architecture_or_size_is_one_line():
    with pytest.raises(ConfigError, match="unknown architecture 'unet': choose one of tdpcr, "):
        get_config("small", "unet")
    with pytest.raises(ConfigError, match="unknown config 'tiny' of dsen2cr: choose one of full, small"):
        get_config("tiny", "dsen2cr")


@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_the_full_sizes_have_the_published_parameter_counts(arch, capsys, monkeypatch):
    published, tolerance = PUBLISHED[arch]
    params = total_cost(get_config("full", arch), 64).params
    assert abs(params - published) <= tolerance * published, (arch, params)
    code, out, err = run_main(["info", "--arch", arch, "--config", "full", "--tile", "64"], capsys, monkeypatch)
    assert code == 0, err
    total = re.search(r"total\s*│\s*([\d,]+)", out)
    assert total and int(total.group(1).replace(",", "")) == params


def test_checkpoints_record_their_architecture(tmp_path):
    from tdpcr_edge.data.normalize import Normalization
    from tdpcr_edge.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    model = build_model("small", "uncrtaints")
    save_checkpoint(tmp_path / "m.pt", Checkpoint(model.config, {}, Normalization(), ["a", "b"], [(0, 0, 0), (1, 1, 1)]), model)
    back = load_checkpoint(tmp_path / "m.pt")
    assert back.config.arch == "uncrtaints" and type(back.build()).__name__ == "UnCRtainTS"


def test_fusion_is_the_concat_architecture_and_baselines_have_none():
    assert get_config("tiny", fusion="concat").arch == "tdpcr-concat"
    assert get_config("small", "tdpcr-concat", fusion="pgf").arch == "tdpcr"
    with pytest.raises(ConfigError, match="--fusion chooses TDP-CR's fusion; dsen2cr has none"):
        get_config("small", "dsen2cr", fusion="concat")


def test_training_options_pick_each_architectures_small_size_and_the_inits_architecture(tmp_path):
    from tdpcr_edge.train import TrainOptions
    from tdpcr_edge.train.options import with_init_arch

    assert TrainOptions(out=tmp_path, arch="dsen2cr").model_config().name == "small"
    assert TrainOptions(out=tmp_path).model_config().name == "tiny"
    test_checkpoints_record_their_architecture(tmp_path)  # writes tmp_path/m.pt, an uncrtaints checkpoint
    assert with_init_arch(TrainOptions(out=tmp_path, init=tmp_path / "m.pt")).arch == "uncrtaints"
    with pytest.raises(ConfigError, match="is a uncrtaints checkpoint, --arch glfcr"):
        with_init_arch(TrainOptions(out=tmp_path, init=tmp_path / "m.pt", arch="glfcr"))
