"""Output paths are checked before the long work: a folder, a path under a file or a folder that
cannot be written ends a command at once with one line, and nothing is written."""

import tempfile

import pytest
from conftest import ascii_locale, write_plan_file

from imc_sim.atomic import check_writable, write_text_atomic
from imc_sim.cli import main
from imc_sim.devices.profile import shipped_profiles
from imc_sim.errors import ImcSimError


def test_a_new_file_even_in_folders_still_to_make_is_writable(tmp_path):
    check_writable(None, "--json")
    check_writable(tmp_path / "a" / "b" / "out.json", "--json")
    (tmp_path / "old.json").write_text("previous")
    check_writable(tmp_path / "old.json", "--json")
    assert not (tmp_path / "a").exists() and (tmp_path / "old.json").read_text() == "previous"


def test_a_folder_a_path_under_a_file_and_a_read_only_folder_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ImcSimError, match=r"^--out .* is a folder; give a file name$"):
        check_writable(tmp_path, "--out")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ImcSimError, match=r"notes.txt is a file, not a folder$"):
        check_writable(tmp_path / "notes.txt" / "sub" / "model.pt", "--out")
    check_writable(tmp_path / "new" / "drift.png", "--plot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # the probe file is gone
    asked = []

    def refused(error: OSError):
        def mkstemp(prefix, dir):
            asked.append(dir)
            raise error
        return mkstemp

    monkeypatch.setattr(tempfile, "mkstemp", refused(PermissionError(13, "Permission denied")))
    with pytest.raises(ImcSimError, match=r"^--plot .*: no permission to write in "):
        check_writable(tmp_path / "new" / "drift.png", "--plot")
    assert asked == [tmp_path]  # the nearest folder that exists
    # a pseudo file system (root may write anywhere, yet not create files in /proc)
    monkeypatch.setattr(tempfile, "mkstemp", refused(FileNotFoundError(2, "No such file or directory")))
    with pytest.raises(ImcSimError, match=r"^--json .*x.json: cannot create a file in .* \(No such file or "
                                          r"directory\)$"):
        check_writable(tmp_path / "x.json", "--json")


def test_text_is_written_as_utf8_whatever_the_locale(tmp_path):
    path = tmp_path / "notes.md"
    with ascii_locale():  # a system whose default encoding is ASCII
        write_text_atomic(path, "modèle ± 1 µS\n")
    assert path.read_bytes() == "modèle ± 1 µS\n".encode()


def test_a_device_file_is_refused_as_an_output():
    with pytest.raises(ImcSimError, match=r"^--store /dev/null is not a regular file; give a file name$"):
        check_writable("/dev/null", "--store")


def never(*args, **kwargs):
    raise AssertionError("the long work started before the output path was checked")


def one_line_error(capsys, fragment: str) -> None:
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_train_refuses_an_out_folder_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("imc_sim.training.loop.train", never)
    assert main(["train", "--out", str(tmp_path), "--quiet"]) == 2
    one_line_error(capsys, f"--out {tmp_path} is a folder")
    (tmp_path / "file").write_text("")
    assert main(["train", "--out", str(tmp_path / "m.pt"), "--json", str(tmp_path / "file" / "m.json")]) == 2
    one_line_error(capsys, "--json")
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(("command", "checkpoints"),
                         [("deploy", 1), ("sensitivity", 1), ("compare", 2), ("multitask", 2)])
def test_chip_commands_refuse_a_plot_folder_before_reading_a_checkpoint(command, checkpoints, tmp_path,
                                                                         capsys):
    (tmp_path / "out.json").write_text("previous")
    absent = [str(tmp_path / f"{i}.pt") for i in range(checkpoints)]  # read first, this would fail otherwise
    assert main([command, *absent, "--json", str(tmp_path / "out.json"), "--plot", str(tmp_path)]) == 2
    one_line_error(capsys, f"--plot {tmp_path} is a folder")
    assert (tmp_path / "out.json").read_text() == "previous"


def test_sweep_refuses_a_store_folder_before_running_a_unit(tiny_checkpoint, tiny_glue, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setattr("imc_sim.deploy.executors.run_sweep", never)
    plan = write_plan_file(tmp_path, checkpoints=[str(tiny_checkpoint)], data_dir=str(tiny_glue))
    assert main(["sweep", str(plan), "--store", str(tmp_path), "--quiet"]) == 2
    one_line_error(capsys, f"--store {tmp_path} is a folder")


def test_an_output_naming_an_input_or_an_earlier_output_is_refused(tmp_path):
    from imc_sim.atomic import check_outputs

    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "link.pt").symlink_to(tmp_path / "model.pt")
    checkpoint = [("the checkpoint", tmp_path / "model.pt")]
    check_outputs({"--json": tmp_path / "r.json", "--plot": tmp_path / "r.png"}, checkpoint)
    with pytest.raises(ImcSimError, match=r"^--json .*link.pt names the same file as the checkpoint; give"):
        check_outputs({"--json": tmp_path / "link.pt"}, checkpoint)
    with pytest.raises(ImcSimError, match=r"^--plot .*r.json names the same file as --json; give another"):
        check_outputs({"--json": tmp_path / "r.json", "--plot": tmp_path / "sub" / ".." / "r.json"})


def test_commands_refuse_to_overwrite_their_inputs(tiny_checkpoint, tiny_glue, tmp_path, capsys):
    plan = write_plan_file(tmp_path, checkpoints=[str(tiny_checkpoint)], data_dir=str(tiny_glue))
    store = tmp_path / "plan.results.jsonl"
    store.write_text("results\n")
    before = tiny_checkpoint.read_bytes()
    profile = tmp_path / "mine.yaml"
    profile.write_text(shipped_profiles()["pcm"].read_text())
    refusals = [
        (["sweep", str(plan), "--json", str(store)], f"--json {store} names the same file as --store"),
        (["sweep", str(plan), "--plot", str(tiny_checkpoint)],
         f"--plot {tiny_checkpoint} names the same file as the checkpoint {tiny_checkpoint}"),
        (["deploy", str(tiny_checkpoint), "--json", str(tiny_checkpoint)],
         "names the same file as the checkpoint"),
        (["compare", str(tiny_checkpoint), str(plan), "--json", str(tmp_path / "c"), "--plot",
          str(tmp_path / "c")], f"--plot {tmp_path / 'c'} names the same file as --json"),
        (["devices", "fit", str(store), "--family", "pcm", "--out", str(store)],
         f"--out {store} names the same file as the input file {store}"),
        (["devices", "show", str(profile), "--plot", str(profile)],
         f"--plot {profile} names the same file as the input file {profile}"),
        (["train", "--train-file", str(store), "--validation-file", str(store), "--out", str(store)],
         f"--out {store} names the same file as --train-file {store}"),
    ]
    for argv, message in refusals:
        assert main(argv) == 2, argv
        one_line_error(capsys, message)
    assert store.read_text() == "results\n" and tiny_checkpoint.read_bytes() == before
    assert profile.read_text() == shipped_profiles()["pcm"].read_text() and not (tmp_path / "c").exists()
