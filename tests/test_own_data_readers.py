"""The readers of users' own files, cell by cell: what a CSV, TSV or JSON-lines file reads as, which
columns hold the text and the label, and the one-line message for each way a file can be wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imc_sim.data import DataSource, load_dev, load_train
from imc_sim.data.columns import choose_columns
from imc_sim.data.files import read_table
from imc_sim.errors import ImcSimError
from imc_sim.tasks import get_task


def text_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def train_source(path: Path, **options) -> DataSource:
    return DataSource(train_file=str(path), validation_file=str(path), **options)


def message(call, *args, **kwargs) -> str:
    with pytest.raises(ImcSimError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_json_arrays_with_a_header_row(tmp_path):
    path = text_file(tmp_path / "train.jsonl", '["label", " text "]\n["pos", "good"]\n\n["neg", "bad"]\n')
    table = read_table(path)  # a header row by default
    assert table.names == ["label", "text"] and table.rows == [["pos", "good"], ["neg", "bad"]]
    assert [table.cell_where(r) for r in range(2)] == [f"{path}:2", f"{path}:4"]
    plain = read_table(path, header=False)
    assert plain.names is None and plain.rows[0] == ["label", " text "] and plain.lines == [1, 2, 4]
    task, ex = load_train(train_source(path), "sst2")
    assert task.text_columns == ("text",) and ex.texts == [("good",), ("bad",)] and ex.labels == [1, 0]


def test_a_blank_line_inside_json_lines_is_skipped_not_the_end(tmp_path):
    path = text_file(tmp_path / "train.jsonl", '{"label": "pos", "text": "a"}\n   \n'
                                               '{"label": "neg", "text": "b"}\n')
    table = read_table(path)
    assert table.rows == [["pos", "a"], ["neg", "b"]] and table.lines == [1, 3]


def test_rows_of_empty_cells_are_skipped(tmp_path):
    path = text_file(tmp_path / "train.csv", "label,text\n,\npos,a\n  , \t\nneg,b\n")
    table = read_table(path)
    assert table.rows == [["pos", "a"], ["neg", "b"]] and table.lines == [3, 5]


def test_every_line_ending_reads_alike(tmp_path):
    """Unix, Windows and old Mac line endings (a spreadsheet's CSV export may use any)."""
    for ending in ("\n", "\r\n", "\r"):
        path = tmp_path / "train.csv"
        path.write_bytes(ending.join(["label,text", "pos,a", "neg,b", ""]).encode())
        table = read_table(path)
        assert table.rows == [["pos", "a"], ["neg", "b"]] and table.lines == [2, 3], repr(ending)


def test_tsv_has_no_quoting_and_csv_has(tmp_path):
    tsv = text_file(tmp_path / "train.tsv", 'sentence\tlabel\n"great" fun, he said\t1\n'
                                            '"a dull mess"\t0\n')
    assert [row[0] for row in read_table(tsv).rows] == ['"great" fun, he said', '"a dull mess"']
    csv_file = text_file(tmp_path / "train.csv", 'sentence,label\n"great, fun",1\n')
    assert read_table(csv_file).rows == [["great, fun", "1"]]


def test_a_json_object_without_a_used_key_names_it(tmp_path):
    path = text_file(tmp_path / "train.jsonl", '{"label": "pos", "text": "a"}\n{"label": "neg"}\n')
    assert message(load_train, train_source(path), "sst2") == (
        f"{path}:2: no column 'text' in this row (2 columns)")


def test_json_numbers_are_text_and_other_values_are_not(tmp_path):
    numbers = text_file(tmp_path / "numbers.jsonl", '{"label": "pos", "text": 5}\n'
                                                    '{"label": "neg", "text": 2.5}\n')
    named = train_source(numbers, text_columns=("text",))  # unnamed, an integer would be row numbers
    assert load_train(named, "sst2")[1].texts == [("5",), ("2.5",)]
    for value in ("true", "null", "[1]"):
        path = text_file(tmp_path / "bad.jsonl", '{"label": "pos", "text": "a"}\n'
                                                 f'{{"label": "neg", "text": {value}}}\n')
        shown = {"true": "True", "null": "None", "[1]": "[1]"}[value]
        assert message(load_train, train_source(path), "sst2") == (
            f"{path}:2: column 'text' holds {shown}, not text")


@pytest.mark.parametrize(("label", "shown"), [("true", "True"), ("1.5", "1.5"), ('["a"]', "['a']")])
def test_a_label_that_is_neither_name_nor_integer(tmp_path, label, shown):
    path = text_file(tmp_path / "train.jsonl", '{"label": "pos", "text": "a"}\n'
                                               f'{{"label": {label}, "text": "b"}}\n')
    assert message(load_train, train_source(path), "sst2") == (
        f"{path}:2: label {shown} is neither a name nor an integer")


def test_an_empty_label_names_its_line(tmp_path):
    path = text_file(tmp_path / "train.csv", "label,text\npos,a\n  ,b\n")
    assert message(load_train, train_source(path), "sst2") == f"{path}:3: empty label"


def test_a_row_shorter_than_the_header(tmp_path):
    """Without --text-column the text is every column but the label; a row that lacks one is an
    error at its line, however short the first row is."""
    path = text_file(tmp_path / "train.csv", "sentence,label,source\nhi,1\nho,0,web\n")
    assert message(load_train, train_source(path), "sst2") == (
        f"{path}:2: no column 'source' in this row (2 columns)")


def test_a_column_index_past_the_header(tmp_path):
    path = text_file(tmp_path / "train.csv", "sentence,label,source\nhi,1,web\nho,0,web\n")
    assert message(load_train, train_source(path, text_columns=("3",)), "sst2") == (
        f"{path}:2: no column 3 in this row (3 columns)")


def test_header_less_files_default_to_every_other_column(tmp_path):
    path = text_file(tmp_path / "train.csv", "pos,good\nneg,bad\n")
    task, ex = load_train(train_source(path, header=False, label_column="0"), "sst2")
    assert task.text_columns == (1,) and ex.texts == [("good",), ("bad",)]
    assert message(load_train, train_source(path, header=False), "sst2") == (
        f"{path} has no header row: pass --label-column and --text-column as 0-based column indices")


def test_the_row_number_guess_reads_the_first_row(tmp_path):
    """An unnamed column whose first cell is an integer counts as row numbers, not text."""
    path = text_file(tmp_path / "train.jsonl", '[7, "good", "pos"]\n["x", "bad", "neg"]\n')
    task, ex = load_train(train_source(path, header=False, label_column="2"), "sst2")
    assert task.text_columns == (1,) and ex.texts == [("good",), ("bad",)]


def test_column_messages_name_the_flag(tmp_path):
    headless = text_file(tmp_path / "plain.csv", "pos,good\nneg,bad\n")
    for options, flag in [({"text_columns": ("sentence",), "label_column": "0"}, "--text-column"),
                          ({"text_columns": ("1",), "label_column": "label"}, "--label-column")]:
        name = options["text_columns"][0] if flag == "--text-column" else "label"
        assert message(load_train, train_source(headless, header=False, **options), "sst2") == (
            f"{headless} has no header row (--no-header): give {flag} as a 0-based column index, "
            f"not the name {name!r}")
    headed = text_file(tmp_path / "train.csv", "label,sentence\npos,good\nneg,bad\n")
    assert message(load_train, train_source(headed, label_column="stars"), "sst2") == (
        f"{headed}: no column 'stars' (columns: label, sentence); a file without a header row "
        "needs --no-header and --label-column as 0-based indices")
    assert message(load_train, train_source(headed, text_columns=("review",)), "sst2").endswith(
        "needs --no-header and --text-column as 0-based indices")


def test_too_many_default_text_columns_lists_the_columns(tmp_path):
    headed = text_file(tmp_path / "train.csv", "label,a,b,c\npos,1,2,3\nneg,4,5,6\n")
    assert message(load_train, train_source(headed), "sst2") == (
        f"{headed}: pass --text-column (one column, or two for sentence pairs); the columns are "
        "label, a, b, c")
    headless = text_file(tmp_path / "plain.csv", "pos,x,y,z\nneg,u,v,w\n")
    assert message(load_train, train_source(headless, header=False, label_column="0"), "sst2") == (
        f"{headless}: pass --text-column (one column, or two for sentence pairs); the columns are "
        "0, 1, 2, 3")


def test_three_text_columns_are_refused_by_the_chooser(tmp_path):
    table = read_table(text_file(tmp_path / "train.csv", "label,a,b,c\npos,1,2,3\n"))
    assert choose_columns(table, ["a", "b"], None).text == [1, 2]
    assert message(choose_columns, table, ["a", "b", "c"], None) == (
        "--text-column takes one column, or two for sentence pairs; got 3")


def test_format_messages(tmp_path):
    csv_file = text_file(tmp_path / "train.csv", "label,text\npos,a\n")
    assert message(read_table, csv_file, "xml") == "--file-format must be one of csv, tsv, jsonl, got 'xml'"
    for name, shown in [("train", "'(none)'"), ("train.txt", "'.txt'")]:
        path = text_file(tmp_path / name, "label,text\npos,a\n")
        assert message(read_table, path) == (
            f"{path}: cannot tell the format from the extension {shown}; pass --file-format csv|tsv|jsonl")
    assert message(read_table, tmp_path / "absent.csv") == f"no data file {tmp_path / 'absent.csv'}"


def test_unreadable_content_messages(tmp_path):
    long_cell = text_file(tmp_path / "long.csv", "label,text\npos," + "x" * 200_000 + "\n")
    assert message(read_table, long_cell) == (
        f"{long_cell}:2: not valid CSV (field larger than field limit (131072))")
    not_json = text_file(tmp_path / "bad.jsonl", '{"label": "pos"}\n{label: neg}\n')
    assert message(read_table, not_json) == (
        f"{not_json}:2: not JSON (Expecting property name enclosed in double quotes at column 2); "
        "expected one object or array per line")
    mixed = text_file(tmp_path / "mixed.jsonl", '{"label": "pos"}\n["neg", "b"]\n')
    assert message(read_table, mixed) == (
        f"{mixed}: each line must be a JSON object, or each line an array (not a mix or other values)")


def test_no_examples_says_only_a_header_only_when_there_is_one(tmp_path):
    empty = text_file(tmp_path / "empty.csv", "\n\n")
    assert message(read_table, empty) == f"{empty}: no examples"
    assert message(read_table, empty, header=False) == f"{empty}: no examples"
    header = text_file(tmp_path / "header.csv", "label,text\n")
    assert message(read_table, header) == f"{header}: no examples (only a header)"
    arrays = text_file(tmp_path / "header.jsonl", '["label", "text"]\n')
    assert message(read_table, arrays) == f"{arrays}: no examples (only a header)"


def test_validation_labels_outside_the_training_set(tmp_path):
    train = text_file(tmp_path / "train.csv", "stars,text\n1,a\n2,b\n10,c\n")
    task, _ = load_train(train_source(train, label_column="stars"), "sst2")
    dev = text_file(tmp_path / "dev.csv", "stars,text\n2,x\npositive,y\n")
    assert message(load_dev, DataSource(validation_file=str(dev)), task, None) == (
        f"{dev}: labels mix integers and names ('2' at line 2, 'positive' at line 3)")
    names = text_file(tmp_path / "names.csv", "stars,text\npositive,y\n")
    assert message(load_dev, DataSource(validation_file=str(names)), task) == (
        f"{names}:2: label 'positive' was not among the training labels (1, 2, 10)")


def test_a_glue_checkpoint_on_an_own_file_checks_glue_labels(tmp_path):
    sst2 = get_task("sst2")
    good = text_file(tmp_path / "good.tsv", "sentence\tlabel\ngood\tpositive\nbad\tnegative\n")
    assert load_dev(DataSource(validation_file=str(good)), sst2).labels == [1, 0]
    dev = text_file(tmp_path / "dev.tsv", "sentence\tlabel\ngood\t1\nbad\t2\n")
    assert re.fullmatch(rf"{re.escape(str(dev))}:3: label '2' is not one of \[.*\]",
                        message(load_dev, DataSource(validation_file=str(dev)), sst2))
