"""The fine-tuning loop's parts: its learning-rate schedule, optimizer and batch stream as set up,
the StochGRASP penalty in every step's loss, the metrics a run reports, and the checks of its
arguments."""

import itertools
import time

import pytest
import torch

from imc_sim.errors import ImcSimError
from imc_sim.peft.stochgrasp import StochGraspLayer
from imc_sim.torch_device import out_of_memory_message
from imc_sim.training import loop
from imc_sim.training.loop import TrainArgs, lr_lambda, prepare


def tiny_args(model_dir, glue, **changes) -> TrainArgs:
    return TrainArgs(**{"method": "grasp", "model": str(model_dir), "data_dir": str(glue), "max_steps": 4,
                        "batch_size": 4, "method_options": {"k": 4}, "torch_device": "cpu", **changes})


@pytest.mark.parametrize(("warmup", "total", "factors"), [
    (2, 10, [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0, 0.0]),
    (0, 4, [1.0, 0.75, 0.5, 0.25, 0.0]),
    (3, 3, [1 / 3, 2 / 3, 1.0, 0.0]),
    (4, 5, [0.25, 0.5, 0.75, 1.0, 1.0, 0.0]),
])
def test_the_schedule_warms_up_linearly_then_decays_to_zero(warmup, total, factors):
    factor = lr_lambda(warmup, total)
    assert [factor(step) for step in range(len(factors))] == pytest.approx(factors, abs=1e-12)


def test_the_optimizer_takes_the_given_rate_without_decay_and_warms_up(tiny_model_dir, tiny_glue):
    run = prepare(tiny_args(tiny_model_dir, tiny_glue, lr=0.02, warmup=0.5))
    group = run.optimizer.param_groups[0]
    assert (run.lr, group["initial_lr"], group["weight_decay"]) == (0.02, 0.02, 0.0)
    assert group["lr"] == pytest.approx(0.02 * 0.5)  # step 0 of a 2-step warm-up
    default = prepare(tiny_args(tiny_model_dir, tiny_glue))
    assert default.lr == default.optimizer.param_groups[0]["initial_lr"] == loop.DEFAULT_LR["grasp"]


def test_the_batch_stream_keeps_to_the_limit_and_length_and_calibrates_nothing(tiny_model_dir, tiny_glue):
    run = prepare(tiny_args(tiny_model_dir, tiny_glue, train_limit=3, max_length=6, batch_size=2))
    batches = list(itertools.islice(run.stream, 6))
    rows = {tuple(t for t in row.tolist() if t) for b in batches for row in b["input_ids"]}  # unpadded
    assert len(rows) == 3 and all(b["input_ids"].shape[1] <= 6 for b in batches)
    assert run.calibration == [] and run.device is None


def test_every_step_adds_the_stochgrasp_penalty_to_the_task_loss(tiny_model_dir, tiny_glue):
    """With lambda large and sigma_target far above the initial sigmas, the first Adam step (a step
    of the learning rate against the sign of each gradient) raises every sigma."""
    run = prepare(tiny_args(tiny_model_dir, tiny_glue, method="stochgrasp",
                            method_options={"k": 4, "sigma_target": 0.5, "lam": 1e3}))
    layers = [m for m in run.model.modules() if isinstance(m, StochGraspLayer)]
    before = [layer.sigma_raw.detach().clone() for layer in layers]
    task_loss, extra = run.step()
    assert extra > 0 and torch.isfinite(task_loss)
    assert all((layer.sigma_raw > b).all() for layer, b in zip(layers, before, strict=True))


def test_a_run_reports_what_it_did(tiny_model_dir, tiny_glue):
    start = time.perf_counter()
    result = loop.train(tiny_args(tiny_model_dir, tiny_glue, method="stochgrasp", eval_limit=5, max_steps=7,
                                  lr=0.01, method_options={"k": 4}), progress=False)
    wall = time.perf_counter() - start
    m = result.metrics
    assert (m["dev_examples"], m["steps"], m["lr"], m["device"], m["drift"]) == (5, 7, 0.01, None, None)
    assert (m["mixed_precision"], m["torch_device"], m["method"]) == ("no", "cpu", "stochgrasp")
    assert m["final_task_loss"] > 0 and m["final_extra_loss"] > 0 and 0 < m["seconds_per_step"] < wall / 2
    assert result.tokenizer is not None and result.tokenizer("a b")["input_ids"]
    assert "method_options" not in result.payload["train_args"]
    grasp = loop.train(tiny_args(tiny_model_dir, tiny_glue, max_steps=1, eval_limit=3), progress=False)
    assert grasp.metrics["final_extra_loss"] == 0.0 and grasp.metrics["dev_examples"] == 3
    aware = loop.train(tiny_args(tiny_model_dir, tiny_glue, max_steps=1, eval_limit=3, device="gaussian"),
                       progress=False)
    assert (aware.metrics["device"], aware.metrics["drift"]) == ("gaussian", "1d")  # the default drift


@pytest.mark.parametrize(("changes", "message"), [
    ({"lr": 0.0}, "TrainArgs.lr = 0.0: must be a number in (0, 1], or None (the method's default)"),
    ({"drift": "1d"}, "--drift needs --device (the profile that drifts)"),
    ({"device_warmup": 0.5}, "--device-warmup needs --device (or --method lightning, whose layers are analog "
                             "in training)"),
    ({"method": "stochgrasp", "method_options": {"sigma_target": "auto"}},
     "--sigma-target auto needs --device (it is derived from the profile)"),
])
def test_arguments_that_contradict_each_other_are_one_line(changes, message):
    with pytest.raises(ImcSimError) as info:
        TrainArgs(**changes).validate()
    assert str(info.value) == message


def test_the_batch_order_comes_from_the_runs_own_generator(tiny_model_dir, tiny_glue):
    """Draws from torch's global generator between batches (a user's code, a library) change
    nothing: the stream shuffles with a generator seeded from --seed."""
    def first_batches(disturb: bool) -> list[torch.Tensor]:
        run = prepare(tiny_args(tiny_model_dir, tiny_glue, train_limit=6, batch_size=4))
        batches = []
        for _ in range(6):
            if disturb:
                torch.rand(100)
            batches.append(next(run.stream)["input_ids"])
        return batches
    assert all(torch.equal(a, b) for a, b in zip(first_batches(False), first_batches(True), strict=True))


def test_running_out_of_memory_says_what_to_lower(monkeypatch):
    def oom(args, progress):
        raise torch.OutOfMemoryError("CUDA out of memory")
    monkeypatch.setattr(loop, "_train", oom)
    with pytest.raises(ImcSimError) as info:
        loop.train(TrainArgs(batch_size=48, max_length=96, torch_device="cuda:1"))
    assert str(info.value) == out_of_memory_message(48, 96, "cuda:1")


def test_a_language_models_run_keeps_to_its_train_and_eval_limits(tiny_gpt2_lm_dir, lm_corpus):
    from imc_sim import lm
    from imc_sim.data import DataSource

    source = DataSource(train_file=str(lm_corpus / "train.txt"),
                        validation_file=str(lm_corpus / "heldout.txt"))
    args = tiny_args(tiny_gpt2_lm_dir, None, task="lm", data_dir=None, data_source=source, max_length=8,
                     train_limit=6, eval_limit=4, max_steps=1)
    run = prepare(args)
    limited = lm.train_stream(source, run.backbone.tokenizer, 8, 4, 0, 6)
    whole = lm.train_stream(source, run.backbone.tokenizer, 8, 4, 0)
    first = next(run.stream)["input_ids"]
    assert torch.equal(first, next(limited)["input_ids"]) and not torch.equal(first, next(whole)["input_ids"])
    tokens = lm.dev_batches(source, run.backbone.tokenizer, 8, 4)[1]
    assert tokens < lm.dev_batches(source, run.backbone.tokenizer, 8)[1]
    assert loop.train(args, progress=False).metrics["dev_examples"] == tokens


def test_training_gives_torchs_global_generator_back_as_it_was(tiny_model_dir, tiny_glue):
    """The training audit: prepare() seeds the global generator, so a notebook's draws after any
    training repeated whatever its own seed."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    loop.train(tiny_args(tiny_model_dir, tiny_glue, max_steps=1, eval_limit=3), progress=False)
    assert torch.equal(torch.rand(3), expected)
