"""imc-sim deploy and imc-sim devices end to end on tiny checkpoints, and their bad input."""

import json

import pytest
import yaml
from conftest import forged, train_tiny

from imc_sim.checkpoint import read_checkpoint
from imc_sim.cli import main
from imc_sim.deploy.compare import check_comparable
from imc_sim.deploy.results import SCHEMA_VERSION, load_result
from imc_sim.devices.profile import shipped_profiles


def deploy(ckpt, glue, tmp_path, *extra):
    return main(["deploy", str(ckpt), "--data-dir", str(glue), "--json", str(tmp_path / "out.json"),
                 "--plot", str(tmp_path / "out.png"), "--quiet", *extra])


def test_ideal_deploy_equals_digital_and_writes_json_and_png(tiny_checkpoint, tiny_glue, tmp_path, capsys):
    assert deploy(tiny_checkpoint, tiny_glue, tmp_path, "--device", "ideal", "--drift", "1s", "1d",
                  "--seeds", "2") == 0
    out = capsys.readouterr().out
    assert "digital" in out and "1d" in out
    assert "mapped 12 layers onto 12 tiles of 512x512 (ideal)" in out and "weights on NVM" in out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["device"] == "ideal" and result["seeds"] == 2
    assert result["schema_version"] == SCHEMA_VERSION and result["name"] == f"grasp ({tiny_checkpoint})"
    assert load_result(tmp_path / "out.json").curve.points[1].metrics == (result["digital_metric"],) * 2
    assert [p["t_seconds"] for p in result["times"]] == [1.0, 86400.0]
    for point in result["times"]:
        assert point["metrics"] == [result["digital_metric"]] * 2
        assert point["mean"] == result["digital_metric"] and point["std"] == 0.0
    assert result["mapping"]["weights_on_nvm"] == 2 * (4 * 32 * 32 + 2 * 32 * 64)
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_user_profile_runs_on_pcm_physics(tiny_checkpoint, tiny_glue, tmp_path):
    raw = yaml.safe_load(shipped_profiles()["pcm"].read_text())
    raw.update(name="my-pcm")
    raw["periphery"].update(tile_rows=16, tile_cols=16)
    mine = tmp_path / "my-pcm.yaml"
    mine.write_text(yaml.safe_dump(raw))
    assert deploy(tiny_checkpoint, tiny_glue, tmp_path, "--device", str(mine), "--drift", "1h,1y",
                  "--seeds", "2") == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["device"] == "my-pcm"
    assert result["mapping"]["tiles"] == 2 * (4 * 2 * 2 + 2 * 8)  # 32x32 -> 2x2, 32x64 -> 2x4 tiles
    assert all(len(p["metrics"]) == 2 for p in result["times"])


def test_gpt2_conv1d_checkpoint_deploys(tmp_path, tiny_gpt2_dir, tiny_glue):
    ckpt = train_tiny(tmp_path / "gpt2.pt", tiny_gpt2_dir, tiny_glue, "--k", "4")
    assert deploy(ckpt, tiny_glue, tmp_path, "--device", "pcm", "--drift", "1d", "--seeds", "1") == 0
    assert json.loads((tmp_path / "out.json").read_text())["mapping"]["analog_layers"] == 2 * 4


def bad_profile(tmp_path, section, key, value, name="pcm"):
    raw = yaml.safe_load(shipped_profiles()[name].read_text())
    raw[section][key] = value
    path = tmp_path / "bad-profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("args, message", [
    (lambda p: ["--device", "memristor"], "unknown device 'memristor'"),
    (lambda p: ["--device", str(p / "broken.yaml")], "malformed YAML"),
    (lambda p: ["--device", bad_profile(p, "conductance", "g_max", 0)],
     "conductance.g_max = 0 is out of range"),
    (lambda p: ["--device", bad_profile(p, "programming", "sigma", -0.1, "gaussian")],
     "programming.sigma = -0.1 is out of range"),
    (lambda p: ["--device", bad_profile(p, "periphery", "adc_bits", 0)],
     "periphery.adc_bits = 0 is out of range"),
    (lambda p: ["--drift", "3parsecs"], "unknown time unit 'parsecs'"),
    (lambda p: ["--drift=-1h"], "negative"),
    (lambda p: ["--device", "reram", "--drift", "1h"], "only characterised at 1s, 1d, 2d"),
    (lambda p: ["--seeds", "0"], "--seeds must be from 1 to 100000, got 0"),
    (lambda p: ["--eval-limit", "0"], "--eval-limit must be at least 1"),
])
def test_bad_input_one_line_nothing_written(args, message, tiny_checkpoint, tiny_glue, tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "out.json").write_text("previous")
    assert deploy(tiny_checkpoint, tiny_glue, tmp_path, *args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "out.json").read_text() == "previous"
    assert not (tmp_path / "out.png").exists()


def test_foreign_checkpoint_is_refused(tiny_glue, tmp_path, capsys):
    foreign = tmp_path / "weights.pt"
    foreign.write_bytes(b"not a checkpoint at all")
    assert deploy(foreign, tiny_glue, tmp_path, "--device", "pcm") == 2
    err = capsys.readouterr().err.strip()
    assert "imc-sim checkpoint" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


def test_devices_list_and_show(tmp_path, capsys):
    assert main(["devices"]) == 0
    listing = capsys.readouterr().out
    for name in ("pcm", "reram", "fefet", "gaussian", "ideal"):
        assert name in listing
    png = tmp_path / "pcm.png"
    assert main(["devices", "show", "pcm", "--plot", str(png)]) == 0
    shown = capsys.readouterr().out
    assert "g_max: 25.0" in shown and "1y" in shown
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["devices", "show", "nothing-here"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["devices", "list", "--plot", "x.png"], "--plot applies to devices show only"),
    (["devices", "list", "pcm"], "devices list takes no profile (got 'pcm')"),
    (["deploy", "model.pt", "--lora-r", "8"], "unrecognized arguments: --lora-r 8"),
    (["compare", "a.pt", "--analog-head"], "unrecognized arguments: --analog-head"),
])
def test_options_that_do_not_apply_are_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)  # imc-sim's own checks return 2
    except SystemExit as stop:  # argparse's (an option the command does not have) exit with 2
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_compare_same_chips_table_json_png(tiny_checkpoint, tiny_model_dir, tiny_glue, tmp_path, capsys):
    other = train_tiny(tmp_path / "stoch.pt", tiny_model_dir, tiny_glue, "--method", "stochgrasp", "--k", "4")
    twin = forged(tiny_checkpoint, tmp_path / "twin.pt")  # the same weights in another file
    argv = ["compare", str(tiny_checkpoint), str(twin), str(other), "--device", "pcm", "--drift", "1s",
            "1y", "--seeds", "3", "--data-dir", str(tiny_glue), "--json", str(tmp_path / "c.json"),
            "--plot", str(tmp_path / "c.png"), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "twin" in out and "stoch" in out and "1y" in out
    result = json.loads((tmp_path / "c.json").read_text())
    first, second, third = result["checkpoints"]
    assert [c["method"] for c in result["checkpoints"]] == ["grasp", "grasp", "stochgrasp"]
    assert first["times"] == second["times"]  # the same chips: identical per-seed results
    assert all(len(p["metrics"]) == 3 for c in result["checkpoints"] for p in c["times"])
    assert third["device_trained"] is None
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def with_weight_sum(checkpoint, factor: float) -> dict:
    """The checkpoint's base fingerprint with its weight sum times ``factor``."""
    fingerprint = read_checkpoint(checkpoint)["base_fingerprint"]
    return {**fingerprint, "weight_sum": fingerprint["weight_sum"] * factor}


def test_compare_takes_a_base_whose_weight_sum_differs_in_its_last_bits(tiny_checkpoint, tmp_path):
    """The same base summed over another thread count: compare must not refuse it."""
    twin = forged(tiny_checkpoint, tmp_path / "twin.pt",
                  base_fingerprint=with_weight_sum(tiny_checkpoint, 1 + 4e-16))
    assert read_checkpoint(twin)["base_fingerprint"] != read_checkpoint(tiny_checkpoint)["base_fingerprint"]
    assert len(check_comparable([tiny_checkpoint, twin])) == 2


@pytest.mark.parametrize("change, message", [
    (lambda _: {"task": "cola"}, "checkpoints trained on different tasks"),
    (lambda _: {"base_fingerprint": {"params": 1}}, "checkpoints on different base models"),
    (lambda c: {"base_fingerprint": with_weight_sum(c, 1.01)}, "checkpoints on different base models"),
], ids=["task", "broken-fingerprint", "same-shape-other-weights"])
def test_compare_refuses_mixed_checkpoints(change, message, tiny_checkpoint, tiny_glue, tmp_path, capsys):
    odd = forged(tiny_checkpoint, tmp_path / "odd.pt", **change(tiny_checkpoint))
    argv = ["compare", str(tiny_checkpoint), str(odd), "--data-dir", str(tiny_glue), "--json",
            str(tmp_path / "c.json"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c.json").exists()


def test_python_dash_m_imc_sim_cli_is_the_command():
    """``python -m imc_sim.cli`` runs the command line (both audits tried it), with its exit codes."""
    import subprocess
    import sys

    listing = subprocess.run([sys.executable, "-m", "imc_sim.cli", "devices"], capture_output=True, text=True,
                             timeout=300)
    assert listing.returncode == 0 and "pcm-chip" in listing.stdout
    bad = subprocess.run([sys.executable, "-m", "imc_sim.cli", "devices", "show", "nothing-here"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
