"""Options and inputs a command would have ignored or misread, found by the audit of session 27:
each is now one line and exit 2 before any model is loaded or trained (the README: inapplicable
options are errors). Before, each ran with exit 0."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import train_tiny, write_plan_file

from imc_sim.cli import main
from imc_sim.deploy import compare, multitask
from imc_sim.devices.profile import shipped_profiles
from imc_sim.figures import figure_format


def never(*args, **kwargs):
    raise AssertionError("the work started although an option was wrong")


def one_line(capsys, argv: list[str]) -> str:
    """The stderr line of ``imc-sim argv``, which must fail with exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("imc-sim: error: "), err
    return err.removeprefix("imc-sim: error: ")


SWEEP = ["--device", "pcm", "--drift", "1d", "--seeds", "1", "--quiet"]


def test_compare_refuses_one_checkpoint_twice_even_as_a_copy(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compare, "deploy_checkpoint", never)
    copy = tmp_path / "copy.pt"
    shutil.copyfile(tiny_checkpoint, copy)
    assert one_line(capsys, ["compare", str(tiny_checkpoint), str(copy), *SWEEP]) == (
        f"{copy} is the same checkpoint as {tiny_checkpoint}; give each once")


def test_multitask_refuses_one_checkpoint_twice(tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(multitask, "load_periphery", never)
    assert one_line(capsys, ["multitask", str(tiny_checkpoint), str(tiny_checkpoint), *SWEEP]) == (
        f"{tiny_checkpoint} is the same checkpoint as {tiny_checkpoint}; give each task once")


def test_multitask_names_itself_not_an_option_it_lacks(tmp_path, tiny_model_dir, tiny_glue, lm_checkpoint,
                                                       monkeypatch, capsys):
    monkeypatch.setattr(multitask, "load_periphery", never)
    lora = train_tiny(tmp_path / "lora.pt", tiny_model_dir, tiny_glue, "--method", "lora")
    assert one_line(capsys, ["multitask", str(lora), *SWEEP]) == (
        f"multitask needs an activation-space GRASP checkpoint (--method grasp); {lora} is lora")
    assert one_line(capsys, ["multitask", str(lm_checkpoint), *SWEEP]) == (
        f"multitask reads GLUE dev sets from --data-dir; {lm_checkpoint} was trained on plain text "
        "(a language model): deploy it on its own")


@pytest.mark.parametrize("source", ["dev", "train", "checkpoint"])
def test_input_ranges_on_a_dynamic_profile_is_refused(source, tiny_checkpoint, capsys):
    assert one_line(capsys, ["deploy", str(tiny_checkpoint), *SWEEP, "--input-ranges", source]) == (
        f"--input-ranges {source} applies to profiles with static input ranges; pcm's are dynamic "
        "(periphery.input_range)")


def test_max_retries_applies_to_ray_only(tmp_path, capsys):
    plan = write_plan_file(tmp_path, checkpoints=["gone.pt"])
    assert one_line(capsys, ["sweep", str(plan), "--max-retries", "5"]) == (
        "--max-retries applies to a sweep on Ray (--ray, --ray-address)")
    assert one_line(capsys, ["sweep", str(plan), "--ray", "--max-retries", "-1"]) == (
        "--max-retries must be at least 0, got -1")


def test_sigma_target_auto_on_a_noise_free_device_is_refused(tmp_path, tiny_model_dir, tiny_glue, capsys):
    out = tmp_path / "model.pt"
    assert one_line(capsys, [
        "train", "--model", str(tiny_model_dir), "--data-dir", str(tiny_glue), "--method", "stochgrasp",
        "--device", "ideal", "--sigma-target", "auto", "--max-steps", "1", "--out", str(out), "--quiet"]) == (
        "--sigma-target auto: device ideal puts no error on the weights (a noise-free profile); give "
        "--sigma-target as a number")
    assert not out.exists()


@pytest.mark.parametrize("name", ["sub/dir/x", "back\\slash"])
def test_a_profile_name_with_a_path_separator_is_refused(name, tmp_path, capsys):
    text = shipped_profiles()["pcm"].read_text(encoding="utf-8").replace("name: pcm", f"name: '{name}'")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert one_line(capsys, ["devices", "show", str(path)]) == (
        f"profile {path}: field name = {name!r} holds a path separator; the name becomes part of file "
        "names (device-NAME.png)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


@pytest.mark.parametrize("name, expected", [("a.png", "png"), ("b.PDF", "pdf"), ("c.svg", "svg")])
def test_a_figure_takes_its_type_from_its_extension(name, expected):
    assert figure_format(name) == expected


@pytest.mark.parametrize("name, got", [("x.xyz", ".xyz"), ("plot", "no extension"), ("p.txt", ".txt")])
def test_a_plot_of_no_figure_type_is_refused_before_the_work(name, got, tiny_checkpoint, tmp_path, capsys):
    path = tmp_path / name
    assert one_line(capsys, ["deploy", str(tiny_checkpoint), *SWEEP, "--plot", str(path)]) == (
        f"--plot {path}: a figure is written as .png, .pdf, .svg; got {got}")
    assert not path.exists()


def test_devices_show_writes_a_pdf_as_a_pdf(tmp_path, capsys):
    path = tmp_path / "pcm.pdf"
    assert main(["devices", "show", "pcm", "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(b"%PDF")
    svg = tmp_path / "pcm.svg"
    assert main(["devices", "show", "pcm", "--plot", str(svg)]) == 0
    assert b"<svg" in svg.read_bytes()[:2000]


def test_the_figure_is_closed_even_when_the_write_fails(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from imc_sim.figures import save_figure

    fig = plt.figure()
    with pytest.raises(Exception, match="a figure is written as"):
        save_figure(fig, Path(tmp_path / "f.bmp"))
    assert not plt.fignum_exists(fig.number)
