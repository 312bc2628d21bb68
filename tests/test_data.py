import pytest
from conftest import ascii_locale

from imc_sim import data
from imc_sim.errors import ImcSimError
from imc_sim.tasks import get_task


def test_real_sst2_layout_and_counts(real_glue):
    task = get_task("sst2")
    dev = data.load_split(task, "dev", real_glue)
    assert len(dev.texts) == 872 and set(dev.labels) == {0, 1}
    train = data.load_split(task, "train", real_glue, limit=100)
    assert len(train.texts) == 100


def test_env_variable_is_the_fallback(tiny_glue, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tiny_glue))
    assert len(data.load_split(get_task("sst2"), "dev", None).texts) == 8


def test_pair_task_and_string_labels(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n0\tA man runs.\tA person moves.\tentailment\n"
        "1\tIt rains.\tIt is dry.\tnot_entailment\n")
    ex = data.load_split(get_task("rte"), "dev", tmp_path)
    assert ex.texts[0] == ("A man runs.", "A person moves.") and ex.labels == [0, 1]


def test_bad_label_and_unknown_task(tmp_path):
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nfine\tmaybe\n")
    with pytest.raises(ImcSimError, match="label 'maybe'"):
        data.load_split(get_task("sst2"), "dev", tmp_path)
    with pytest.raises(ImcSimError, match="unknown task"):
        get_task("imagenet")


def test_length_grouped_batches_cover_every_example(tiny_glue):
    import torch
    from transformers import AutoTokenizer

    from imc_sim.backbones import packaged_model_dir

    tok = AutoTokenizer.from_pretrained(packaged_model_dir())
    enc = data.encode(data.load_split(get_task("sst2"), "train", tiny_glue), tok, 16)
    order = data.length_grouped_order(enc, 4, torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(len(enc)))
    batch = data.collate(enc, order[:4])
    assert batch["input_ids"].shape[0] == 4 and batch["attention_mask"].sum() > 0


def test_regression_score_that_is_no_number(tmp_path):
    (tmp_path / "STS-B").mkdir()
    (tmp_path / "STS-B" / "dev.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t4.2\nc\td\thigh\n")
    with pytest.raises(ImcSimError, match=r"dev.tsv:3: score 'high' is not a number"):
        data.load_split(get_task("stsb"), "dev", tmp_path)


def test_glue_files_are_utf8_unquoted_tsv_whatever_the_locale(tmp_path):
    """GLUE's TSVs have no quoting (a sentence may start with a quote) and are UTF-8."""
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text(
        'sentence\tlabel\n"the best" , said no one\t0\nun film très réussi\t1\n', encoding="utf-8")
    with ascii_locale():
        ex = data.load_split(get_task("sst2"), "dev", tmp_path)
    assert ex.texts == [('"the best" , said no one',), ("un film très réussi",)] and ex.labels == [0, 1]


def test_a_missing_glue_file_names_the_layout(tmp_path):
    with pytest.raises(ImcSimError) as info:
        data.load_split(get_task("mnli"), "dev", tmp_path)
    assert str(info.value) == (f"no data file {tmp_path / 'MNLI' / 'dev_matched.tsv'} "
                               "(expected GLUE's layout DIR/MNLI/...)")


def test_cola_files_have_no_header(tmp_path):
    """CoLA's TSVs: source, label, the original mark, sentence; no header row."""
    (tmp_path / "CoLA").mkdir()
    (tmp_path / "CoLA" / "dev.tsv").write_text("gj04\t1\t\tThe sailors rode the breeze.\n"
                                               "gj04\t0\t*\tThe more we study, we learn.\n")
    ex = data.load_split(get_task("cola"), "dev", tmp_path)
    assert ex.texts == [("The sailors rode the breeze.",), ("The more we study, we learn.",)]
    assert ex.labels == [1, 0]


def test_a_header_without_the_tasks_columns(tmp_path):
    (tmp_path / "SST-2").mkdir()
    dev = tmp_path / "SST-2" / "dev.tsv"
    for text, header in [("text\tlabel\nfine\t1\n", "['text', 'label']"), ("", "[]")]:
        dev.write_text(text)
        with pytest.raises(ImcSimError) as info:
            data.load_split(get_task("sst2"), "dev", tmp_path)
        assert str(info.value) == f"{dev}: header {header} lacks the columns ['sentence'] + 'label'"


def test_a_short_row_names_its_line_with_or_without_a_header(tmp_path):
    (tmp_path / "CoLA").mkdir()
    cola = tmp_path / "CoLA" / "dev.tsv"
    cola.write_text("gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\n")
    (tmp_path / "SST-2").mkdir()
    sst2 = tmp_path / "SST-2" / "dev.tsv"
    sst2.write_text("sentence\tlabel\nfine\t1\nno label here\n")
    for task, path, line, got in [("cola", cola, 2, 3), ("sst2", sst2, 3, 1)]:
        with pytest.raises(ImcSimError) as info:
            data.load_split(get_task(task), "dev", tmp_path)
        assert str(info.value) == f"{path}:{line}: expected more columns, got {got}"


def test_example_limits_and_a_file_without_examples(tiny_glue, tmp_path):
    sst2 = get_task("sst2")
    assert len(data.load_split(sst2, "dev", tiny_glue, limit=1).texts) == 1
    sizes = [len(data.load_split(sst2, split, tiny_glue).texts) for split in ("train", "dev")]
    assert sizes == [32, 8]  # train.tsv and dev.tsv
    with pytest.raises(ImcSimError) as info:
        data.load_split(sst2, "dev", tiny_glue, limit=0)
    assert str(info.value) == "example limit must be at least 1, got 0"
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n")
    with pytest.raises(ImcSimError) as info:
        data.load_split(sst2, "dev", tmp_path)
    assert str(info.value) == f"{tmp_path / 'SST-2' / 'dev.tsv'}: no examples"
