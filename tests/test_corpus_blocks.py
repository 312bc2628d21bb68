"""Plain-text corpora for `--task lm` (`data/corpus.py`, `lm.py`) on a word tokenizer whose ids
are known: the blocks, their padding and batches, the training order, the options a language
model refuses and the length a model's positions allow, every message whole."""

from types import SimpleNamespace

import pytest
import torch

from imc_sim import lm
from imc_sim.data import DataSource
from imc_sim.data.corpus import (
    IGNORE,
    Blocks,
    Corpus,
    block_batches,
    check_lm_source,
    collate_blocks,
    endless_block_batches,
    make_blocks,
    read_corpus,
)
from imc_sim.errors import ImcSimError


class WordTokenizer:
    """Word i of ``words`` is id i + 1; special ids as given."""

    def __init__(self, eos=None, sep=None, pad=None, words="a b c d e f g h"):
        self.words = words.split()
        self.eos_token_id, self.sep_token_id, self.pad_token_id = eos, sep, pad

    def __call__(self, texts, add_special_tokens=True):
        assert not add_special_tokens
        return {"input_ids": [[self.words.index(w) + 1 for w in t.split()] for t in texts]}


def test_blocks_of_passages_each_ended_by_the_eos():
    blocks = make_blocks(Corpus("c", ("a b", "c", "d e f")), WordTokenizer(eos=50, sep=60, pad=0), 3)
    assert blocks.input_ids == [[1, 2, 50], [3, 50, 4], [5, 6, 50]] and blocks.pad_id == 0
    assert blocks.tokens == 9 and len(blocks) == 3


def test_without_an_eos_the_sep_ends_a_passage_and_pads():
    blocks = make_blocks(Corpus("c", ("a b", "c")), WordTokenizer(sep=60), 2)
    assert blocks.input_ids == [[1, 2], [60, 3], [60]] and blocks.pad_id == 60


def test_a_tokenizer_with_no_end_token():
    with pytest.raises(ImcSimError) as info:
        make_blocks(Corpus("c", ("a b",)), WordTokenizer(pad=0), 2)
    assert str(info.value) == "the tokenizer has neither an EOS nor a SEP token to end a passage"


def test_a_corpus_of_exactly_one_block_and_one_token_short():
    assert make_blocks(Corpus("c", ("a b",)), WordTokenizer(eos=9), 3).input_ids == [[1, 2, 9]]
    with pytest.raises(ImcSimError) as info:
        make_blocks(Corpus("small.txt", ("a b",)), WordTokenizer(eos=9), 4)
    assert str(info.value) == "small.txt: 3 tokens, shorter than one block of --max-length 4"


def test_a_short_block_is_padded_and_its_padding_not_scored():
    batch = collate_blocks(Blocks([[1, 2, 3], [4]], pad_id=7), [1, 0])
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    assert batch["input_ids"].tolist() == [[4, 7, 7], [1, 2, 3]]
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert batch["labels"].tolist() == [[4, IGNORE, IGNORE], [1, 2, 3]]


def numbered(n: int) -> Blocks:
    """``n`` one-token blocks whose token is their index."""
    return Blocks([[i] for i in range(n)], pad_id=0)


def test_held_out_batches_hold_every_block_once_in_order():
    assert [b["input_ids"].flatten().tolist() for b in block_batches(numbered(7), 3)] == [
        [0, 1, 2], [3, 4, 5], [6]]
    assert [len(b["input_ids"]) for b in block_batches(numbered(40))] == [32, 8]


def epoch(n: int, batch: int, seed: int) -> list[list[int]]:
    stream = endless_block_batches(numbered(n), batch, torch.Generator().manual_seed(seed))
    return [next(stream)["input_ids"].flatten().tolist() for _ in range(-(-n // batch))]


def test_a_training_epoch_holds_every_block_once():
    batches = epoch(7, 3, seed=0)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(i for b in batches for i in b) == list(range(7))


def test_the_training_order_comes_from_the_run_generator_alone():
    torch.manual_seed(1)
    first = epoch(20, 4, seed=5)
    torch.manual_seed(2)  # torch's global generator plays no part
    assert epoch(20, 4, seed=5) == first
    assert epoch(20, 4, seed=6) != first


def test_the_next_epoch_is_shuffled_again():
    stream = endless_block_batches(numbered(6), 6, torch.Generator().manual_seed(0))
    orders = [next(stream)["input_ids"].flatten().tolist() for _ in range(4)]
    assert all(sorted(o) == list(range(6)) for o in orders) and len({tuple(o) for o in orders}) > 1


def write(path, text):
    path.write_text(text)
    return str(path)


def test_a_corpus_reads_its_first_non_blank_lines(tmp_path):
    path = write(tmp_path / "c.txt", "  one  \n\n\t\ntwo\nthree\n")
    assert read_corpus(path) == Corpus(path, ("one", "two", "three"))
    assert read_corpus(path, 2) == Corpus(path, ("one", "two"))
    with pytest.raises(ImcSimError) as info:
        read_corpus(path, 0)
    assert str(info.value) == "example limit must be at least 1, got 0"


CLASSIFICATION = ("is for classification data; a language model reads plain text files (--train-file, "
                  "--validation-file)")


@pytest.mark.parametrize(("option", "flag"), [
    ({"text_columns": ("text",)}, "--text-column"), ({"label_column": "y"}, "--label-column"),
    ({"file_format": "csv"}, "--file-format"), ({"header": False}, "--header/--no-header"),
    ({"dataset": "wikitext"}, "--dataset"), ({"data_dir": "glue"}, "--data-dir"),
    ({"label_column": "y", "dataset": "wikitext"}, "--label-column")])
def test_classification_options_are_refused_first_named(option, flag):
    with pytest.raises(ImcSimError) as info:
        check_lm_source(DataSource(train_file="t.txt", validation_file="v.txt", **option), training=True)
    assert str(info.value) == f"{flag} {CLASSIFICATION}"


def test_the_text_files_a_language_model_needs():
    with pytest.raises(ImcSimError) as info:
        check_lm_source(DataSource(validation_file="v.txt"), training=True)
    assert str(info.value) == "--task lm needs --train-file (a plain text file, one passage per line)"
    with pytest.raises(ImcSimError) as info:
        check_lm_source(DataSource(train_file="t.txt"), training=False)
    assert str(info.value) == "a language model needs --validation-file (held-out plain text)"
    # evaluating reads the validation file only: a recorded training file is not checked
    check_lm_source(DataSource(train_file="t.csv", validation_file="v.txt"), training=False)


def test_a_language_model_needs_a_model(tmp_path):
    source = DataSource(train_file=write(tmp_path / "t.txt", "a\n"),
                        validation_file=write(tmp_path / "v.txt", "b\n"))
    with pytest.raises(ImcSimError) as info:
        lm.checked_task(source, None)
    assert str(info.value) == ("--task lm needs --model: a causal language model such as gpt2 or a "
                               "local GPT-2 folder (the packaged MiniLM is an encoder)")
    assert lm.checked_task(source, "gpt2").name == "lm"
    with pytest.raises(ImcSimError, match="needs --train-file"):
        lm.checked_task(DataSource(validation_file=source.validation_file), "gpt2")


def model_with(**config):
    return SimpleNamespace(config=SimpleNamespace(**config))


@pytest.mark.parametrize("config", [{"n_positions": 64}, {"max_position_embeddings": 64}])
def test_a_length_past_the_model_positions(config):
    lm.check_length(model_with(**config), 64)
    with pytest.raises(ImcSimError) as info:
        lm.check_length(model_with(**config), 65)
    assert str(info.value) == "--max-length 65 is longer than the model's 64 positions"
    lm.check_length(model_with(), 10_000)  # a model that states no limit


CORPUS = "".join(f"{w} {w}\n" for w in "abcdefgh")  # 8 lines of 3 tokens


def test_training_batches_of_a_file_to_its_limit(tmp_path):
    source = DataSource(train_file=write(tmp_path / "t.txt", CORPUS), validation_file=str(tmp_path / "t.txt"))
    stream = lm.train_stream(source, WordTokenizer(eos=9, pad=0), 3, 2, seed=0, limit=2)
    first = [next(stream)["input_ids"].tolist() for _ in range(3)]
    assert all(sorted(map(tuple, b)) == [(1, 1, 9), (2, 2, 9)] for b in first)  # lines 1 and 2 only
    torch.manual_seed(3)
    again = lm.train_stream(source, WordTokenizer(eos=9, pad=0), 3, 1, seed=4)
    torch.manual_seed(4)
    other = lm.train_stream(source, WordTokenizer(eos=9, pad=0), 3, 1, seed=4)
    assert [next(again)["input_ids"].tolist() for _ in range(8)] == [
        next(other)["input_ids"].tolist() for _ in range(8)]


def test_held_out_batches_of_eight_blocks_to_the_limit(tmp_path):
    source = DataSource(validation_file=write(tmp_path / "v.txt", CORPUS * 2))
    batches, tokens = lm.dev_batches(source, WordTokenizer(eos=9, pad=0), 3)
    assert [len(b["input_ids"]) for b in batches] == [8, 8] and tokens == 48
    batches, tokens = lm.dev_batches(source, WordTokenizer(eos=9, pad=0), 3, limit=3)
    assert [b["input_ids"].tolist() for b in batches] == [[[1, 1, 9], [2, 2, 9], [3, 3, 9]]] and tokens == 9
