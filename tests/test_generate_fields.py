"""Greedy continuations under drift (:mod:`imc_sim.deploy.generate`): the printed layout of
:class:`Continuations`, its name, the head kept digital unless asked, no progress bar, and the
one-line error for a checkpoint that is not a language model."""

from __future__ import annotations

import contextlib
import io

import pytest

from imc_sim.deploy.generate import Continuations, continuations_under_drift
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError

HOUR, YEAR = 3600.0, 365 * 86400.0


def test_format_lists_each_prompt_digital_then_each_time():
    c = Continuations("ckpt", ("great fun", "a dull"), ("x y", "z"), (HOUR, YEAR),
                      (("x q", "z"), ("q q", "it's")))
    assert c.format() == (
        "greedy continuations of ckpt (chip seed 0):\n"
        "  prompt: 'great fun'\n"
        "     digital: 'x y'\n"
        "          1h: 'x q'\n"
        "          1y: 'q q'\n"
        "  prompt: 'a dull'\n"
        "     digital: 'z'\n"
        "          1h: 'z'\n"
        "          1y: \"it's\"")


def test_format_refuses_times_without_their_texts():
    c = Continuations("ckpt", ("great fun",), ("x",), (HOUR, YEAR), (("y",),))
    with pytest.raises(ValueError, match="zip"):
        c.format()


@pytest.fixture(scope="module")
def runs(lm_checkpoint):
    """Three runs of two tokens after one prompt at 1 h on pcm, and what they wrote to stderr:
    the defaults, the head digital by name with a name given, and the head on tiles."""
    pcm, err = load_profile("pcm"), io.StringIO()
    with contextlib.redirect_stderr(err):
        default = continuations_under_drift(lm_checkpoint, pcm, [HOUR], ["great fun"], 2)
        named = continuations_under_drift(lm_checkpoint, pcm, [HOUR], ["great fun"], 2, analog_head=False,
                                          name="mine")
        head = continuations_under_drift(lm_checkpoint, pcm, [HOUR], ["great fun"], 2, analog_head=True)
    return default, named, head, err.getvalue()


def test_the_name_is_the_checkpoint_path_unless_given(runs, lm_checkpoint):
    default, named, head, _ = runs
    assert default.name == head.name == str(lm_checkpoint)
    assert named.name == "mine"
    assert default.format().splitlines()[0] == f"greedy continuations of {lm_checkpoint} (chip seed 0):"


def test_the_head_stays_digital_unless_asked(runs):
    """The defaults equal the head kept digital by name (chip seed 0 both times); the head on
    tiles (the 32 x 30522 output layer too) continues differently on the same chip seed."""
    default, named, head, _ = runs
    assert default.prompts == ("great fun",) and default.times == (HOUR,)
    assert default.digital == named.digital == head.digital
    assert default.on_chip == named.on_chip
    assert head.on_chip != default.on_chip
    assert len(default.on_chip) == 1 and len(default.on_chip[0]) == 1


def test_no_progress_bar(runs):
    assert runs[3] == ""


def test_a_classifier_checkpoint_is_refused(tiny_checkpoint):
    with pytest.raises(ImcSimError) as err:
        continuations_under_drift(tiny_checkpoint, load_profile("pcm"), [HOUR], ["great fun"], 2)
    assert str(err.value) == (f"{tiny_checkpoint}: continuations need a language-model (--task lm) "
                              "checkpoint, this one is sst2")
