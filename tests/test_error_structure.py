"""experiments/error_structure.py and gap_decomposition.py: a device's weight error split into what
every chip shares and what differs, and the steps from Gaussian noise to the chip."""

import json
import math
import sys

import pytest
import torch
from test_experiments import results_dir, run_script  # noqa: F401 - the fixture

sys.path.insert(0, str(__import__("conftest").REPO / "experiments"))
import common  # noqa: E402
from error_structure import THIRDS, Moments, summarize  # noqa: E402
from gap_decomposition import chip_errors, evaluate_steps, held_weights  # noqa: E402

from imc_sim import cli, data  # noqa: E402
from imc_sim.deploy.run import load_scored  # noqa: E402


def synthetic(systematic: str, chips: int = 10) -> tuple[dict[str, Moments], torch.Tensor, torch.Tensor]:
    """Errors e_c = s + sigma(w) eps_c on 60,000 weights, sigma rising with |w| / max |w| of the
    row by thirds (0.01, 0.02, 0.03); s a gain (0.05 w), independent noise, or none."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(200, 300, generator=gen) * 0.05
    size = w.abs() / w.abs().amax(dim=1, keepdim=True)
    sigma = 0.01 * (1 + (size * 3).clamp_max(2.999).floor())
    s = {"gain": 0.05 * w, "noise": 0.004 * torch.randn(w.shape, generator=gen), "none": torch.zeros_like(w)}
    moments = Moments.zeros(w)
    for _ in range(chips):
        moments.add(w + s[systematic] + sigma * torch.randn(w.shape, generator=gen))
    return {"layer": moments}, sigma, s[systematic]


@pytest.mark.parametrize("systematic", ["gain", "noise", "none"])
def test_the_error_splits_into_what_chips_share_and_what_differs(systematic):
    moments, sigma, s = synthetic(systematic)
    row = summarize("synthetic", "1d", moments, 10, None)
    assert row.rms_random == pytest.approx(float(sigma.pow(2).mean().sqrt()), rel=0.02)
    for k, level in enumerate((0.01, 0.02, 0.03)):
        assert row.random_by_size[k] == pytest.approx(level, rel=0.03), THIRDS[k]
    assert row.rms_total ** 2 == pytest.approx(row.rms_systematic ** 2 + row.rms_random ** 2, rel=1e-6)
    if systematic == "none":  # the chips' mean carries sigma / sqrt(10) of noise, which is taken out
        assert row.rms_systematic < 0.3 * row.rms_random / math.sqrt(10)
    else:
        assert row.rms_systematic == pytest.approx(float(s.pow(2).mean().sqrt()), rel=0.06)
    if systematic == "gain":
        assert row.gain_share > 0.95
    if systematic == "noise":
        assert row.gain_share < 0.05


def test_error_structure_on_a_checkpoint(results_dir, tiny_checkpoint, monkeypatch, capsys):  # noqa: F811
    run_script("error_structure", monkeypatch, "--checkpoint", str(tiny_checkpoint), "--devices", "ideal,pcm",
               "--seeds", "3")
    out = json.loads((common.RESULTS / "error_structure-full.json").read_text())
    rows = {(r["device"], r["label"]): r for r in out["rows"]}
    assert set(rows) == {(d, t) for d in ("ideal", "pcm") for t in ("1h", "1d", "1y")}
    for t in ("1h", "1d", "1y"):
        assert rows["ideal", t]["rms_total"] < 1e-7  # the ideal chip holds the digital weights
        pcm = rows["pcm", t]
        assert pcm["rms_random"] > 0 and pcm["sigma_eq"] is None  # noise_regime has not run here
    assert rows["pcm", "1y"]["rms_total"] > rows["pcm", "1h"]["rms_total"]  # drift adds error
    assert (common.RESULTS / "error_structure-full.png").exists()
    assert "<!-- error_structure-full -->" in (results_dir / "results.md").read_text()


@pytest.fixture
def scored(tiny_checkpoint, tiny_glue):
    return load_scored(tiny_checkpoint, data.DataSource(data_dir=str(tiny_glue)), None)


def test_on_the_ideal_device_every_step_is_the_digital_model(scored):
    before = {n: p.detach().clone() for n, p in scored.loaded.model.named_parameters()}
    values = evaluate_steps(scored, "ideal", 86400.0, chips=2, draws=2)
    assert values == {"shaped Gaussian": [scored.digital] * 2, "chip weights": [scored.digital] * 2}
    after = dict(scored.loaded.model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in before.items())  # the weights were put back
    assert scored.measure() == scored.digital


def test_the_shaped_noise_has_each_weights_spread_over_the_chips(scored):
    spread, held = chip_errors(scored, "pcm", 86400.0, chips=3, kept=3)
    model = scored.loaded.model
    for name, s in spread.items():
        digital = model.get_submodule(name).weight.detach()
        direct = torch.stack([chip[name] for chip in held]).std(dim=0)  # n - 1, as the spread
        torch.testing.assert_close(s, direct, rtol=1e-4, atol=1e-7)
        assert not torch.equal(held[0][name], digital)
    with held_weights({n: model.get_submodule(n) for n in spread}) as (weights, _):
        for w in weights.values():
            w.zero_()
        assert all(model.get_submodule(n).weight.abs().max() == 0 for n in spread)
    assert all(model.get_submodule(n).weight.abs().max() > 0 for n in spread)


def test_gap_decomposition_refuses_a_point_without_a_time(monkeypatch, capsys):
    gap_decomposition = __import__("gap_decomposition")
    monkeypatch.setattr(sys, "argv", ["gap_decomposition.py", "--points", "pcm"])
    with pytest.raises(SystemExit) as exit_info:
        cli.run_script(gap_decomposition.main)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "'pcm' is not device@time" in err
    assert len(err.strip().splitlines()) == 1


RESULTS = __import__("conftest").REPO / "experiments" / "results"


def test_the_committed_files_agree_with_each_other():
    """error_structure's rows keep total^2 = shared^2 + random^2 (where the shared part is not
    clamped) and carry noise_regime's sigmas; gap_decomposition's chip rows are noise_regime's."""
    points = json.loads((RESULTS / "noise_regime-full.json").read_text())["points"]
    regime = {(p["device"], p["label"]): p for p in points}
    for row in json.loads((RESULTS / "error_structure-full.json").read_text())["rows"]:
        if row["rms_systematic"] > 0:
            assert row["rms_total"] ** 2 == pytest.approx(row["rms_systematic"] ** 2 + row["rms_random"] ** 2)
        point = regime.get((row["device"], row["label"]))
        assert row["sigma_eq"] == (point["sigma_eq"] if point else None)
    for row in json.loads((RESULTS / "gap_decomposition-full.json").read_text())["rows"]:
        if row["step"] == "chip":
            point = regime[row["device"], row["label"]]
            assert row["measured"]["mean"] == pytest.approx(point["measured"]["mean"])
            assert row["det_accuracy"] == pytest.approx(point["det_accuracy"])
