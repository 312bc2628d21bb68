"""The data static input ranges are calibrated on (`calibration.py`): the first batches of a
run's training split, at the run's length, and the training file a checkpoint records."""

import pytest
from transformers import AutoTokenizer

from imc_sim.calibration import recorded_training_source, training_batches
from imc_sim.data import DataSource
from imc_sim.errors import ImcSimError
from imc_sim.tasks import custom_task, get_task


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_a_glue_split_is_cut_at_the_run_length_and_limit(tiny_glue, tokenizer):
    source = DataSource(data_dir=str(tiny_glue))
    batches = training_batches(source, get_task("sst2"), tokenizer, max_length=4)
    assert [b["input_ids"].shape for b in batches] == [(32, 4)]  # every training example, 4 tokens
    limited = training_batches(source, get_task("sst2"), tokenizer, max_length=4, limit=5)
    assert [b["input_ids"].shape[0] for b in limited] == [5]


def write_corpus(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


def test_a_corpus_gives_four_batches_of_eight_blocks(tmp_path, tokenizer):
    train = write_corpus(tmp_path / "train.txt", [f"passage number {i} of the corpus" for i in range(200)])
    source = DataSource(train_file=train, validation_file=train)
    batches = training_batches(source, get_task("lm"), tokenizer, max_length=8)
    assert [tuple(b["input_ids"].shape) for b in batches] == [(8, 8)] * 4


def test_a_corpus_is_read_to_the_run_limit(tmp_path, tokenizer):
    train = write_corpus(tmp_path / "train.txt", ["one two three four five six seven"] * 50)
    source = DataSource(train_file=train, validation_file=train)
    # two lines: 2 x (7 words + the end token) = 16 tokens, two blocks of 8
    batches = training_batches(source, get_task("lm"), tokenizer, max_length=8, limit=2)
    assert [tuple(b["input_ids"].shape) for b in batches] == [(2, 8)]


def test_a_corpus_needs_its_training_file(tmp_path, tokenizer):
    dev = write_corpus(tmp_path / "dev.txt", ["held out text"] * 20)
    with pytest.raises(ImcSimError) as info:
        training_batches(DataSource(validation_file=dev), get_task("lm"), tokenizer, max_length=8)
    assert str(info.value) == "--task lm needs --train-file (a plain text file, one passage per line)"


def recorded(**train_args):
    return {"train_args": train_args}


def test_own_files_are_found_with_their_columns(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("review,label\ngood,pos\n")
    raw = {"train_file": str(train), "validation_file": str(train), "text_columns": ["review"],
           "label_column": "label"}
    task = custom_task(["pos"], ["review"], "label")
    source, name = recorded_training_source(recorded(data_source=raw), task)
    assert source == DataSource(train_file=str(train), validation_file=str(train),
                                text_columns=("review",), label_column="label")
    assert name == str(train)


def test_a_glue_layout_without_a_recorded_source(tiny_glue):
    """Checkpoints trained through the Python API (the experiment scripts) record only data_dir."""
    found = recorded_training_source(recorded(data_dir=str(tiny_glue), data_source=None), get_task("sst2"))
    assert found == (DataSource(data_dir=str(tiny_glue)), str(tiny_glue / "SST-2" / "train.tsv"))


def test_nothing_found_where_no_training_file_is_here(tmp_path, tiny_glue):
    sst2 = get_task("sst2")
    assert recorded_training_source({}, sst2) is None  # no train_args recorded at all
    gone = {"train_file": str(tmp_path / "gone.csv"), "validation_file": str(tmp_path / "gone.csv")}
    assert recorded_training_source(recorded(data_source=gone), sst2) is None
    dev_only = {"validation_file": str(tiny_glue / "SST-2" / "dev.tsv")}
    assert recorded_training_source(recorded(data_source=dev_only), sst2) is None
    assert recorded_training_source(recorded(data_dir=str(tmp_path)), sst2) is None  # no SST-2 there
    assert recorded_training_source(recorded(data_source={"dataset": "someone/reviews"}), sst2) is None
