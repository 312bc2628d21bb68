"""Two small tables of names and fields: the static-range helpers of device-aware training
(:mod:`imc_sim.training.static_ranges`: deploy's layer names, row tiles, the ranges a checkpoint
keeps) and the task table (:mod:`imc_sim.tasks`: look-up, custom tasks, and their record in a
checkpoint and back)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imc_sim.devices.profile import Periphery
from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec, custom_task, get_task, task_from_checkpoint, task_record
from imc_sim.training.static_ranges import deploy_name, row_tile_grid, stored_ranges

PEFT_NAME = "base_model.model.bert.encoder.layer.0.attention.self.query"
NAME = "bert.encoder.layer.0.attention.self.query"


class PeftWrapped(nn.Module):
    """Stands for peft's wrapper, which carries a ``peft_config``."""

    def __init__(self) -> None:
        super().__init__()
        self.peft_config = {"default": None}


def test_deploy_name_drops_peft_prefix_only_under_peft():
    assert deploy_name(PeftWrapped(), PEFT_NAME) == NAME
    assert deploy_name(nn.Linear(2, 2), PEFT_NAME) == PEFT_NAME
    assert deploy_name(nn.Linear(2, 2), NAME) == NAME


@pytest.mark.parametrize(("split", "rows", "padded"), [("fixed", 16, 48), ("even", 14, 42)])
def test_row_tiles_of_forty_inputs(split, rows, padded):
    """40 inputs on tiles of 16 rows: 16 + 16 + 8 (fixed) or 14 + 14 + 12 (even)."""
    grid = row_tile_grid(40, Periphery(tile_rows=16, tile_cols=8, tile_split=split))
    assert (grid.rows, grid.row_tiles, grid.padded_in) == (rows, 3, padded)
    assert sum(grid.row_sizes) == 40


def test_stored_ranges_name_layers_as_deploy_does():
    periphery = Periphery(tile_rows=16, tile_split="even", input_percentile=99.5)
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0])
    stored = stored_ranges(PeftWrapped(), periphery, [PEFT_NAME, "base_model.model.classifier"], [a, b])
    assert (stored.tile_rows, stored.tile_split, stored.input_percentile) == (16, "even", 99.5)
    assert list(stored.layers) == [NAME, "classifier"]
    assert stored.layers[NAME] is a and stored.layers["classifier"] is b


@pytest.mark.parametrize("n_ranges", [1, 3])
def test_stored_ranges_refuse_names_and_ranges_of_different_lengths(n_ranges):
    ranges = [torch.ones(1)] * n_ranges
    with pytest.raises(ValueError, match="zip"):
        stored_ranges(nn.Linear(2, 2), Periphery(), ["a", "b"], ranges)


def test_get_task_ignores_case_and_names_the_choices():
    assert get_task("SST2") is get_task("sst2")
    with pytest.raises(ImcSimError) as err:
        get_task("imagenet")
    assert str(err.value) == ("unknown task 'imagenet'; choose one of sst2, cola, mrpc, qqp, stsb, mnli, "
                              "qnli, rte, wnli, lm")


def test_custom_task_fields_and_default_header():
    task = custom_task(["neg", "pos"], ["review"], "stars")
    assert task == TaskSpec("custom", "", ("review",), "stars", ("neg", "pos"), "accuracy",
                            has_header=True, custom=True)
    assert task.num_labels == 2 and not task.is_regression and not task.is_lm


def test_task_record_is_plain_lists_strings_and_numbers():
    record = task_record(custom_task(["neg", "pos"], [0, 2], 1, has_header=False))
    assert record == {"name": "custom", "folder": "", "text_columns": [0, 2], "label_column": 1,
                      "labels": ["neg", "pos"], "metric_name": "accuracy", "has_header": False,
                      "dev_file": "dev.tsv", "hub_dev_split": "validation", "custom": True}
    assert task_record(get_task("mnli"))["labels"] == ["contradiction", "entailment", "neutral"]


def test_a_custom_task_comes_back_from_its_record():
    task = custom_task(["a", "b", "c"], [0, 2], 1, has_header=False)
    meta = {"task": "custom", "task_spec": task_record(task)}
    assert task_from_checkpoint(meta) == task


@pytest.mark.parametrize("meta", [
    {"task": "stsb"},  # a checkpoint from before task records
    {"task": "stsb", "task_spec": None},
    {"task": "stsb", "task_spec": task_record(get_task("stsb"))},
], ids=["no-record", "none", "glue-record"])
def test_a_glue_checkpoint_gets_the_tables_task(meta):
    assert task_from_checkpoint(meta) is get_task("stsb")
