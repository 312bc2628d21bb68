"""A deployment's bookkeeping that mutation testing found unchecked (docs/mutation.md): the names
each layer drifts under, layers it does not have, the parameters it leaves digital, stored input
ranges that do not fit, an interrupted calibration, the labels a calibration batch carries, the
line ``deploy`` prints, and tiles shared with a model they do not fit."""

from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tiny_bert
from test_static_ranges import chip_profile, token_batches

from imc_sim.crossbar.input_ranges import StoredRanges
from imc_sim.crossbar.mapping import analog_layer_names, chip_name, deploy_model, share_tiles
from imc_sim.deploy.chip import Chip
from imc_sim.devices.profile import PROFILE_DIR, load_profile, profile_from_dict
from imc_sim.errors import ImcSimError

FFN = "bert.encoder.layer.1.intermediate.dense"
ATTENTION = "bert.encoder.layer.0.attention.self"


def static_deployment(**kwargs):
    return deploy_model(make_tiny_bert(), chip_profile(), **kwargs)


def stored_for(deployment, dtype=torch.float32, **changes) -> StoredRanges:
    """Ranges 1, 2, ... for every layer of ``deployment`` on its own row tiles; ``changes`` replace
    or (None) drop layers."""
    p = deployment.profile.periphery
    layers = {name: torch.arange(1, layer.row_tiles + 1, dtype=dtype)
              for name, layer in deployment.layers.items()}
    for name, ranges in changes.items():
        if ranges is None:
            del layers[name]
        else:
            layers[name] = ranges
    return StoredRanges(p.tile_rows, p.tile_split, p.input_percentile, layers)


def test_each_layer_drifts_from_its_own_streams():
    """Two layers with the same weights on pcm without programming noise hold the same programmed
    weights; their drift (coefficients and read noise) is drawn under each layer's own name."""
    raw = yaml.safe_load(Path(PROFILE_DIR, "pcm.yaml").read_text())
    raw["programming"]["scale"] = 0.0
    model = make_tiny_bert()
    query, key = (model.get_submodule(f"{ATTENTION}.{n}") for n in ("query", "key"))
    key.load_state_dict(query.state_dict())
    deployment = deploy_model(model, profile_from_dict(raw, "pcm-exact.yaml"))
    layers = [deployment.layers[f"{ATTENTION}.{n}"] for n in ("query", "key")]
    chip = Chip(deployment, 0)
    chip.program()
    assert torch.equal(layers[0].weights, layers[1].weights)
    chip.drift_to(86400.0)
    assert not torch.equal(layers[0].weights, layers[1].weights)


def test_layers_asked_to_stay_digital_must_be_analog_layers():
    with pytest.raises(ImcSimError, match=r"^not layers that could go onto tiles: bert\.nope, nope$"):
        deploy_model(make_tiny_bert(), load_profile("pcm"), digital=[FFN, "nope", "bert.nope"])


def test_the_parameters_left_digital_are_all_but_the_tiles_weights():
    model = make_tiny_bert()
    total = sum(p.numel() for p in model.parameters())
    on_tiles = sum(model.get_submodule(n).weight.numel() for n in analog_layer_names(model) if n != FFN)
    summary = deploy_model(model, load_profile("pcm"), digital=[FFN]).summary()
    assert summary["weights_on_nvm"] == on_tiles and summary["digital_params"] == total - on_tiles


def test_only_an_adapters_base_layer_stands_for_the_adapter():
    """A plain layer that happens to be called ``base`` keeps its own name on the chip."""
    model = torch.nn.Sequential()
    model.add_module("block", torch.nn.Module())
    model.block.add_module("base", torch.nn.Linear(4, 4))
    assert chip_name(model, "block.base") == "block.base"


def test_switching_to_layers_the_deployment_lacks_is_refused_by_name():
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    with pytest.raises(ImcSimError, match="bert.pooler.nope"):
        deployment.use_analog([FFN, "bert.pooler.nope"])


def test_stored_ranges_are_used_as_float32_on_the_tiles_device():
    deployment = static_deployment()
    deployment.model.to("meta")
    assert deployment.use_stored_ranges(stored_for(deployment, torch.float64))
    assert deployment.input_ranges == "checkpoint"
    for layer in deployment.layers.values():
        assert layer.input_ranges.dtype == torch.float32 and layer.input_ranges.device.type == "meta"
        assert layer.input_ranges.shape == (layer.row_tiles,)


@pytest.mark.parametrize("change", [None, torch.ones(7)], ids=["missing", "other row tiles"])
def test_stored_ranges_that_miss_or_misfit_a_layer_are_not_used_at_all(change):
    deployment = static_deployment()
    assert not deployment.use_stored_ranges(stored_for(deployment, **{FFN: change}))
    assert deployment.input_ranges is None
    assert all(layer.input_ranges is None for layer in deployment.layers.values())


def test_an_interrupted_calibration_keeps_no_ranges():
    """The second batch fails (a token id beyond the vocabulary) after the first reached every
    layer: no layer keeps the first batch's ranges; a later calibration gives every layer its own."""
    deployment = static_deployment()
    bad = {**token_batches(1)[0], "input_ids": torch.full((4, 9), 10_000)}
    with pytest.raises(IndexError):
        deployment.calibrate([token_batches(1)[0], bad])
    assert deployment.input_ranges is None
    assert all(layer.input_ranges is None for layer in deployment.layers.values())
    deployment.calibrate(token_batches(1))
    assert all(layer.input_ranges is not None for layer in deployment.layers.values())


def test_calibration_ignores_the_batches_labels():
    """Labels of the wrong length would break the model's loss: calibration never passes them."""
    deployment = static_deployment()
    batches = [{**batch, "labels": torch.zeros(7, dtype=torch.long)} for batch in token_batches(2)]
    deployment.calibrate(batches)
    assert deployment.input_ranges == "calibration batches"


def test_the_mapping_line_names_the_layers_kept_digital_and_the_ranges_source():
    deployment = static_deployment(digital=[FFN])
    deployment.calibrate(token_batches(1))
    on_nvm = sum(layer.in_features * layer.out_features for layer in deployment.layers.values())
    share = 100 * on_nvm / (on_nvm + 32 * 64)
    text = deployment.describe()
    assert text.startswith(f"mapped {len(deployment.layers)} layers onto ")
    assert text.endswith(f"; 1 layers kept digital, {share:.1f}% of the layers' weights on the chip"
                         "; static input ranges from the calibration batches")


def test_tiles_are_not_shared_with_a_model_whose_layers_have_other_shapes():
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    query = r"bert\.encoder\.layer\.0\.attention\.self\.query"
    with pytest.raises(ImcSimError, match=rf"^{query} does not fit the tiles of {query}$"):
        share_tiles(deployment, make_tiny_bert(hidden=48))
