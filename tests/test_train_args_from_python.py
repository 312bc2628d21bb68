"""TrainArgs and method options given from Python (the training audit): each value the command
line's option types would refuse is one ImcSimError naming the field, raised by validate() before
any model or data is loaded, and the options' values reach the config as Python numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imc_sim.data import DataSource
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.training.loop import TrainArgs


@pytest.mark.parametrize("changes, message", [
    ({"lr": "1e-3"}, "TrainArgs.lr = '1e-3': must be a number in (0, 1]"),
    ({"lr": 2.0}, "TrainArgs.lr = 2.0: must be a number in (0, 1]"),
    ({"batch_size": "8"}, "TrainArgs.batch_size = '8': must be an integer >= 1"),
    ({"max_steps": 2.5}, "TrainArgs.max_steps = 2.5: must be an integer >= 1"),
    ({"max_length": True}, "TrainArgs.max_length = True: must be an integer >= 1"),
    ({"train_limit": 0}, "TrainArgs.train_limit = 0: must be an integer >= 1, or None"),
    ({"seed": 1.5}, "TrainArgs.seed = 1.5: must be an integer from 0 to 9223372036854775807"),
    ({"seed": -1}, "TrainArgs.seed = -1: must be an integer from 0"),
    ({"seed": 2**64}, "TrainArgs.seed = 18446744073709551616: must be an integer from 0"),
    ({"warmup": 1.5}, "TrainArgs.warmup = 1.5: must be a fraction of the steps in [0, 1)"),
    ({"warmup": -0.5}, "TrainArgs.warmup = -0.5: must be a fraction"),
    ({"device": "pcm", "device_warmup": "0.5"}, "TrainArgs.device_warmup = '0.5': must be a fraction"),
    ({"device": "pcm", "device_warmup": 1.0}, "TrainArgs.device_warmup = 1.0: must be a fraction"),
    ({"task": None}, "TrainArgs.task = None: must be text"),
    ({"model": 3}, "TrainArgs.model = 3: must be text or a path, or None"),
    ({"device": 7}, "TrainArgs.device = 7: must be a profile's name or YAML path, or None"),
    ({"method_options": [("k", 4)]}, "TrainArgs.method_options = [('k', 4)]: must be a dict"),
    ({"method_options": {"seed": 5}}, "method_options: the seed is TrainArgs.seed, not a method option"),
    ({"data_source": "reviews.csv"},
     "TrainArgs.data_source = 'reviews.csv': must be an imc_sim.data.DataSource"),
])
def test_a_field_of_the_wrong_type_or_range_is_one_line(changes, message):
    with pytest.raises(ImcSimError) as info:
        TrainArgs(**changes).validate()
    assert str(info.value).startswith(message)


def test_a_profile_object_as_device_says_to_write_it_out():
    with pytest.raises(ImcSimError, match="TrainArgs.device takes a profile's name or YAML path.*'pcm-2x'"):
        TrainArgs(device=load_profile("pcm", {"name": "pcm-2x"})).validate()


def test_numpy_numbers_and_paths_are_accepted():
    TrainArgs(lr=np.float32(1e-3), max_steps=np.int64(3), seed=np.int64(2), model=Path("some/folder"),
              method_options={"k": np.int64(4)}).validate()


@pytest.mark.parametrize("method, options, message", [
    ("grasp", {"k": "4"}, "method option k = '4': must be an integer >= 1"),
    ("grasp", {"k": 4.5}, "method option k = 4.5: must be an integer >= 1"),
    ("grasp", {"k": 0}, "method option k = 0: must be an integer >= 1"),
    ("grasp", {"targets": ["query", "value"]}, "method option targets = ['query', 'value']: must be text"),
    ("grasp", {"learn_scale": "no"}, "method option learn_scale = 'no': must be True or False"),
    ("stochgrasp", {"lam": "0.05"}, "method option lam = '0.05': must be a finite number >= 0"),
    ("stochgrasp", {"lam": -1}, "method option lam = -1: must be a finite number >= 0"),
    ("stochgrasp", {"sigma_target": -0.01},
     "method option sigma_target = -0.01: must be a finite number >= 0"),
    ("stochgrasp", {"sigma_target": "often"}, "sigma_target: expected a number, 'auto' or 'auto*F'"),
    ("stochgrasp", {"rows": "columns"}, "method option rows = 'columns': must be 'rows' or 'shared'"),
    ("grasp-w", {"sampling": "outputs "},
     "method option sampling = 'outputs ': must be 'outputs' or 'weights'"),
    ("lora", {"lora_r": 0}, "method option lora_r = 0: must be an integer >= 1"),
    ("lora", {"lora_r": "2"}, "method option lora_r = '2': must be an integer >= 1"),
])
def test_a_method_option_of_the_wrong_type_or_range_is_one_line(method, options, message):
    with pytest.raises(ImcSimError) as info:
        TrainArgs(method=method, method_options=options).validate()
    assert str(info.value).startswith(message)


def test_option_values_reach_the_config_as_python_numbers():
    config = get_method("stochgrasp").make_config({"k": np.int64(8), "lam": np.float32(0.5), "seed": 0})
    assert (config["k"], config["lam"]) == (8, 0.5)
    assert type(config["k"]) is int and type(config["lam"]) is float
    assert get_method("lora").make_config({"lora_r": 2, "seed": 0})["r"] == 2


def test_paths_are_recorded_as_text():
    args = TrainArgs(model=Path("some/folder"), data_dir=Path("glue"), device=Path("my.yaml"))
    assert (args.model, args.data_dir, args.device) == ("some/folder", "glue", "my.yaml")


def test_own_data_refuses_a_second_folder_or_a_glue_task():
    own = DataSource(train_file="train.csv", validation_file="dev.csv")
    with pytest.raises(ImcSimError, match="data_dir '/no/such' and data_source's None differ"):
        TrainArgs(data_dir="/no/such", data_source=own).validate()
    with pytest.raises(ImcSimError, match="task 'mrpc' names a GLUE task"):
        TrainArgs(task="mrpc", data_source=own).validate()
    TrainArgs(data_dir="glue", data_source=DataSource(data_dir="glue")).validate()  # as the command line


def test_one_text_column_given_as_text_is_that_column():
    assert DataSource(train_file="t.csv", validation_file="d.csv", text_columns="review").text_columns == (
        "review",)
