"""Shared fixtures: tiny random BERT / GPT-2 models, a tiny GLUE folder, the real SST-2 data."""

from __future__ import annotations

import hashlib
import locale
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import Phase, settings
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
)

from imc_sim.backbones import packaged_model_dir

REPO = Path(__file__).resolve().parents[1]

# Property-based tests (tests/test_properties.py): seeded and small by default, so that the suite
# gives the same verdict on every run and stays fast; HYPOTHESIS_PROFILE=thorough searches wider.
settings.register_profile("imc-sim", derandomize=True, max_examples=8, deadline=None, database=None,
                          print_blob=True)
settings.register_profile("thorough", max_examples=300, deadline=None, database=None, print_blob=True)
# mutation testing (docs/mutation.md): the default examples, no shrinking (a failure is all it needs)
settings.register_profile("mutation", parent=settings.get_profile("imc-sim"), print_blob=False,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "imc-sim"))


def make_tiny_bert(vocab_size: int = 100, num_labels: int = 2,
                   hidden: int = 32) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden, num_labels=num_labels,
                        max_position_embeddings=64)
    return BertForSequenceClassification(config).eval()


def make_tiny_gpt2(vocab_size: int = 100) -> GPT2ForSequenceClassification:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        num_labels=2, pad_token_id=0)
    return GPT2ForSequenceClassification(config).eval()


def make_tiny_gpt2_lm(vocab_size: int = 30522, positions: int = 64) -> GPT2LMHeadModel:
    """A tiny random causal GPT-2 whose special ids are those of the packaged MiniLM tokenizer
    ([PAD] 0, [SEP] 102 ends a passage)."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=positions,
                        pad_token_id=0, bos_token_id=102, eos_token_id=102)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def tiny_bert() -> BertForSequenceClassification:
    return make_tiny_bert()


@pytest.fixture
def tiny_gpt2() -> GPT2ForSequenceClassification:
    return make_tiny_gpt2()


@pytest.fixture
def token_batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 100, (3, 7), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def save_with_tokenizer(model, out: Path) -> Path:
    """Save ``model`` as a local model folder with the packaged MiniLM tokenizer beside it."""
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(packaged_model_dir() / name, out / name)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT saved as a local model folder."""
    return save_with_tokenizer(make_tiny_bert(vocab_size=30522), tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def wide_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with hidden size 128, wide enough for K up to 128."""
    return save_with_tokenizer(make_tiny_bert(vocab_size=30522, hidden=128),
                               tmp_path_factory.mktemp("wide-bert"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A tiny random GPT-2 (Conv1D layers) saved as a local model folder."""
    return save_with_tokenizer(make_tiny_gpt2(vocab_size=30522), tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_gpt2_lm_dir(tmp_path_factory) -> Path:
    """A tiny random causal GPT-2 saved as a local model folder (the MiniLM tokenizer beside it)."""
    return save_with_tokenizer(make_tiny_gpt2_lm(), tmp_path_factory.mktemp("tiny-gpt2-lm"))


POSITIVE = ["a charming and moving film", "great fun", "wonderful acting", "a delight"]
NEGATIVE = ["a dull mess", "boring and flat", "terrible plot", "painfully slow"]


@pytest.fixture(scope="session")
def tiny_glue(tmp_path_factory) -> Path:
    """GLUE's layout with a tiny SST-2: DIR/SST-2/{train,dev}.tsv."""
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    rows = [(s, 1) for s in POSITIVE] + [(s, 0) for s in NEGATIVE]
    body = "".join(f"{s} \t{label}\n" for s, label in rows)
    (root / "SST-2" / "train.tsv").write_text("sentence\tlabel\n" + body * 4)
    (root / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + body)
    return root


@pytest.fixture(scope="session")
def real_glue() -> Path:
    """The real GLUE folder (../shared/data/glue or $IMC_SIM_DATA); a failure under CI if absent."""
    root = Path(os.environ.get("IMC_SIM_DATA", REPO.parent / "shared" / "data" / "glue"))
    if not (root / "SST-2" / "dev.tsv").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the GLUE data folder {root} is missing")
        pytest.skip(f"real GLUE data not found at {root} (set IMC_SIM_DATA)")
    return root


@contextmanager
def ascii_locale() -> Iterator[None]:
    """The C locale for text encodings (ASCII: a system whose default encoding is not UTF-8)."""
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, old)


def write_plan_file(folder: Path, **fields) -> Path:
    """``folder/plan.yaml``: a sweep plan on ``pcm``, 1 s and 1 y, one seed, with ``fields`` over these."""
    plan = {"devices": ["pcm"], "seeds": 1, "times": ["1s", "1y"], **fields}
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, allow_unicode=True), encoding="utf-8")
    return path


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, computed here rather than by the code under test."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def forged(src: Path, dst: Path, **changes) -> Path:
    """A copy of the checkpoint ``src`` at ``dst`` with the entries ``changes`` replaced."""
    from imc_sim.checkpoint import read_checkpoint, save_checkpoint

    data = read_checkpoint(src)
    save_checkpoint(dst, {k: v for k, v in {**data, **changes}.items() if k not in ("format", "version")})
    return dst


def train_tiny(out: Path, model_dir: Path, glue: Path, *extra: str) -> Path:
    """``imc-sim train`` for 3 steps on a tiny local model; returns the checkpoint path."""
    from imc_sim.cli import main

    argv = ["train", "--model", str(model_dir), "--data-dir", str(glue), "--max-steps", "3",
            "--batch-size", "8", "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model_dir, tiny_glue) -> Path:
    """A GRASP (K=4) checkpoint of the tiny BERT on the tiny SST-2."""
    return train_tiny(tmp_path_factory.mktemp("ckpt") / "grasp.pt", tiny_model_dir, tiny_glue,
                      "--k", "4", "--lr", "0.05")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on once this returns."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LM_TEXT = "\n".join(POSITIVE + NEGATIVE) + "\n"


@pytest.fixture(scope="session")
def lm_corpus(tmp_path_factory) -> Path:
    """DIR/train.txt (the tiny SST-2 sentences three times) and DIR/heldout.txt (once)."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "train.txt").write_text(LM_TEXT * 3)
    (root / "heldout.txt").write_text(LM_TEXT)
    return root


def train_lm(out: Path, model_dir: Path, corpus: Path, *extra: str) -> int:
    """``imc-sim train --task lm`` for 3 steps on ``corpus``; returns the exit status."""
    from imc_sim.cli import main

    return main(["train", "--task", "lm", "--model", str(model_dir),
                 "--train-file", str(corpus / "train.txt"), "--validation-file", str(corpus / "heldout.txt"),
                 "--max-length", "16", "--max-steps", "3", "--batch-size", "4", "--out", str(out), "--quiet",
                 *extra])


@pytest.fixture(scope="session")
def lm_checkpoint(tmp_path_factory, tiny_gpt2_lm_dir, lm_corpus) -> Path:
    """A GRASP (K=4) checkpoint of the tiny causal GPT-2 on the tiny corpus."""
    out = tmp_path_factory.mktemp("lm-ckpt") / "grasp.pt"
    assert train_lm(out, tiny_gpt2_lm_dir, lm_corpus, "--k", "4", "--lr", "0.05") == 0
    return out
