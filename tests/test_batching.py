"""Training batches: every example once per epoch, the order fixed by the run's generator alone
(never torch's global one), and mega-batches of 50 batches sorted by length as Hugging Face's
LengthGroupedSampler does."""

from __future__ import annotations

import itertools

import torch
from transformers import AutoTokenizer

from imc_sim.data import (
    Encoded,
    Examples,
    collate,
    encode,
    endless_batches,
    eval_batches,
    length_grouped_order,
)


def encoded(n: int) -> Encoded:
    """``n`` examples of distinct lengths 1..n (example i has i + 1 tokens, all equal to i)."""
    return Encoded([[i] * (i + 1) for i in range(n)], None, torch.arange(n), pad_id=-1)


def example_ids(batch: dict[str, torch.Tensor]) -> list[int]:
    return batch["labels"].tolist()


def test_each_epoch_holds_every_example_once():
    data, size = encoded(23), 4
    stream = endless_batches(data, size, torch.Generator().manual_seed(0))
    batches = [example_ids(b) for b in itertools.islice(stream, 12)]  # two epochs of 6 batches
    for epoch in (batches[:6], batches[6:]):
        assert sorted(i for b in epoch for i in b) == list(range(23))
        assert sorted(len(b) for b in epoch) == [3, 4, 4, 4, 4, 4]
    assert batches[:6] != batches[6:]


def test_the_order_depends_on_the_generator_only():
    data = encoded(40)

    def first_epoch(seed: int, global_seed: int) -> list[list[int]]:
        torch.manual_seed(global_seed)
        stream = endless_batches(data, 4, torch.Generator().manual_seed(seed))
        return [example_ids(b) for b in itertools.islice(stream, 10)]

    assert first_epoch(0, global_seed=1) == first_epoch(0, global_seed=2)
    assert first_epoch(0, global_seed=1) != first_epoch(1, global_seed=1)
    torch.manual_seed(1)
    once = length_grouped_order(data, 4, torch.Generator().manual_seed(5))
    torch.manual_seed(2)
    assert length_grouped_order(data, 4, torch.Generator().manual_seed(5)) == once


def test_mega_batches_of_fifty_batches_are_sorted_by_length():
    """With 51 batches of 2, the first 100 shuffled examples are sorted together and the last two
    form the 51st batch on their own."""
    data, size = encoded(102), 2
    shuffled = torch.randperm(102, generator=torch.Generator().manual_seed(3)).tolist()
    order = length_grouped_order(data, size, torch.Generator().manual_seed(3))
    batches = {tuple(order[i:i + size]) for i in range(0, 102, size)}
    by_length = sorted(shuffled[:100], reverse=True)  # example i is i + 1 tokens long
    expected = {tuple(by_length[i:i + size]) for i in range(0, 100, size)}
    expected.add(tuple(sorted(shuffled[100:], reverse=True)))
    assert batches == expected


def test_a_batch_is_what_the_tokenizer_pads_in_values_and_types(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    pairs = [("a gripping film", "it grips"), ("dull", "a long and tedious mess of a plot")]
    batch = collate(encode(Examples(pairs, [1, 0]), tokenizer, 32), [0, 1])
    padded = tokenizer(*zip(*pairs, strict=True), padding=True, return_tensors="pt")
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert batch[name].dtype == padded[name].dtype == torch.long, name
        assert torch.equal(batch[name], padded[name]), name
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long


def test_the_dev_split_is_batched_once_longest_first():
    data = encoded(300)
    batches = eval_batches(data)
    order = [i for b in batches for i in example_ids(b)]
    assert sorted(order) == list(range(300)) and [len(b["labels"]) for b in batches] == [128, 128, 44]
    assert order == sorted(range(300), reverse=True)  # example i is i + 1 tokens long
    assert [b["input_ids"].shape[1] for b in batches] == [300, 172, 44]  # each padded to its longest


def test_a_tokenizer_padding_with_its_end_token_pads_batches_with_it(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = tokenizer.sep_token  # padding with an end token, as load_backbone does for GPT-2
    texts = [("a gripping and heartfelt film",), ("dull",)]
    batch = collate(encode(Examples(texts, [1, 0]), tokenizer, 32), [0, 1])
    padded = tokenizer([t for (t,) in texts], padding=True, return_tensors="pt")
    assert tokenizer.pad_token_id not in (None, 0)
    assert torch.equal(batch["input_ids"], padded["input_ids"])
    assert torch.equal(batch["attention_mask"], padded["attention_mask"])


def test_regression_labels_stay_fractions_and_long_texts_are_cut(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = encode(Examples([("word " * 40,), ("fine",)], [0.5, 3.25]), tokenizer, 8)
    assert data.labels.dtype == torch.float32 and data.labels.tolist() == [0.5, 3.25]
    assert [len(ids) for ids in data.input_ids] == [8, 3]  # [CLS] fine [SEP]


def test_without_a_padding_token_batches_pad_with_id_0(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = None
    data = encode(Examples([("a long sentence here",), ("dull",)], [1, 0]), tokenizer, 16)
    assert data.pad_id == 0
    batch = collate(data, [0, 1])
    assert batch["input_ids"][1, 3:].tolist() == [0, 0, 0]
    assert batch["attention_mask"][1].tolist() == [1] * 3 + [0] * 3
