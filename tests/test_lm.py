"""Causal language models (--task lm): corpus blocks, perplexity, train -> merge -> deploy on a tiny
random GPT-2, greedy continuations, the metric's format, and bad input."""

import json
import math

import pytest
import torch
from conftest import LM_TEXT, POSITIVE, forged, train_lm

from imc_sim import lm
from imc_sim.checkpoint import load_adapted, load_model
from imc_sim.cli import main
from imc_sim.data import DataSource
from imc_sim.data.corpus import IGNORE, Corpus, block_batches, make_blocks, read_corpus
from imc_sim.errors import ImcSimError
from imc_sim.metrics import metric_format


def test_blocks_end_passages_and_mask_padding(tiny_gpt2_lm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_lm_dir)
    blocks = make_blocks(Corpus("t", ("great fun", "a delight", "wonderful acting")), tokenizer, 4)
    flat = [i for b in blocks.input_ids for i in b]
    assert flat.count(tokenizer.sep_token_id) == 3 and tokenizer.cls_token_id not in flat
    assert [len(b) for b in blocks.input_ids[:-1]] == [4] * (len(blocks) - 1) and blocks.tokens == len(flat)
    batch = block_batches(blocks)[0]
    short = len(blocks.input_ids[-1])
    assert (batch["labels"][-1, short:] == IGNORE).all() and (batch["attention_mask"][-1, short:] == 0).all()
    assert (batch["labels"][:-1] == batch["input_ids"][:-1]).all()
    with pytest.raises(ImcSimError, match="shorter than one block of --max-length 64"):
        make_blocks(Corpus("t", ("great fun",)), tokenizer, 64)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tiny_gpt2_lm_dir):
    """Zero logits predict every token with 1/V, so perplexity is exactly V."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_lm_dir)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied: the input embeddings become zero too
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_lm_dir)
    batches = block_batches(make_blocks(Corpus("t", tuple(POSITIVE)), tokenizer, 5), 2)
    assert lm.perplexity(model, batches) == pytest.approx(model.config.vocab_size, rel=1e-6)


def test_lm_trains_merges_and_records_the_task(lm_checkpoint, lm_corpus):
    adapted, merged = load_adapted(lm_checkpoint), load_model(lm_checkpoint)
    assert merged.meta["task"] == "lm" and merged.task.is_lm
    assert merged.meta["metrics"]["metric_name"] == "perplexity"
    batches, tokens = lm.dev_batches(DataSource(validation_file=str(lm_corpus / "heldout.txt")),
                                     merged.tokenizer, 16)
    before, after = lm.perplexity(adapted.model, batches), lm.perplexity(merged.model, batches)
    assert math.isfinite(after) and after == pytest.approx(before, rel=1e-5)
    assert after == pytest.approx(merged.meta["metrics"]["metric"], rel=1e-5)
    assert tokens == merged.meta["metrics"]["dev_examples"] > 0


@pytest.mark.parametrize(("method", "options"), [("lora", ("--lora-r", "4")), ("stochgrasp", ("--k", "4"))])
def test_other_methods_train_on_text(method, options, tmp_path, tiny_gpt2_lm_dir, lm_corpus):
    out = tmp_path / f"{method}.pt"
    assert train_lm(out, tiny_gpt2_lm_dir, lm_corpus, "--method", method, *options) == 0
    loaded = load_model(out)
    assert type(loaded.model).__name__ == "GPT2LMHeadModel" and loaded.meta["task"] == "lm"
    assert math.isfinite(loaded.meta["metrics"]["metric"])


def test_deploy_ideal_equals_digital_and_pcm_is_finite(lm_checkpoint, lm_corpus, tmp_path, capsys):
    held = ["--validation-file", str(lm_corpus / "heldout.txt"), "--quiet", "--drift", "1h", "1y"]
    assert main(["deploy", str(lm_checkpoint), "--device", "ideal", "--seeds", "1",
                 "--json", str(tmp_path / "ideal.json"), *held]) == 0
    ideal = json.loads((tmp_path / "ideal.json").read_text())
    assert ideal["metric_name"] == "perplexity"
    for point in ideal["times"]:
        assert point["mean"] == pytest.approx(ideal["digital_metric"], rel=1e-6)
    assert main(["deploy", str(lm_checkpoint), "--device", "pcm", "--seeds", "2", "--json",
                 str(tmp_path / "pcm.json"), "--generate", "3", "--prompt", "great fun", *held]) == 0
    out = capsys.readouterr().out
    pcm = json.loads((tmp_path / "pcm.json").read_text())
    assert all(math.isfinite(m) and m > 1 for p in pcm["times"] for m in p["metrics"])
    assert f"{pcm['digital_metric']:.2f}" in out and "max" in out  # a number, not x100 percent
    assert "prompt: 'great fun'" in out and "digital:" in out and "1y:" in out


def test_compare_lm_checkpoints(lm_checkpoint, lm_corpus, tmp_path, capsys):
    twin = forged(lm_checkpoint, tmp_path / "twin.pt")
    assert main(["compare", str(lm_checkpoint), str(twin), "--device", "ideal", "--seeds", "1",
                 "--drift", "1d", "--validation-file", str(lm_corpus / "heldout.txt"), "--quiet"]) == 0
    digital = load_model(lm_checkpoint).meta["metrics"]["metric"]
    assert capsys.readouterr().out.count(f"{digital:.2f}") >= 2


def test_metric_format_knows_perplexity_and_percent():
    assert metric_format("perplexity")(123.456) == "123.46" and metric_format("accuracy")(0.9123) == "91.23"
    assert metric_format("perplexity").worst([3.0, 5.0]) == 5.0
    assert metric_format("f1").worst([3.0, 5.0]) == 3.0
    assert metric_format("perplexity").axis_label("perplexity") == "perplexity"


def test_read_corpus_skips_blank_lines_and_limits(tmp_path):
    (tmp_path / "c.txt").write_text("\n  one  \n\ntwo\nthree\n")
    assert read_corpus(str(tmp_path / "c.txt"), limit=2).lines == ("one", "two")


def one_line_error(capsys, argv, message, written):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not any(p.exists() for p in written)


@pytest.mark.parametrize("files, message", [
    ({"train.txt": "", "heldout.txt": LM_TEXT}, "empty corpus"),
    ({"train.txt": "great fun\n", "heldout.txt": LM_TEXT}, "shorter than one block of --max-length 16"),
    ({"train.csv": "sentence,label\ngreat fun,1\n", "heldout.txt": LM_TEXT}, "not a .csv data file"),
    ({"train.txt": b"caf\xe9\n", "heldout.txt": LM_TEXT}, "not UTF-8"),
])
def test_bad_lm_training_input(files, message, tmp_path, tiny_gpt2_lm_dir, capsys):
    paths = []
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        paths.append(path)
    out = tmp_path / "model.pt"
    one_line_error(capsys, ["train", "--task", "lm", "--model", str(tiny_gpt2_lm_dir), "--train-file",
                            str(paths[0]), "--validation-file", str(paths[1]), "--max-length", "16",
                            "--max-steps", "1", "--out", str(out), "--quiet"], message, [out])


def test_a_block_of_one_token_is_refused_before_training(tmp_path, lm_corpus, tiny_gpt2_lm_dir, capsys,
                                                         monkeypatch):
    from imc_sim.training import loop

    monkeypatch.setattr(loop, "load_backbone", lambda *a: (_ for _ in ()).throw(AssertionError("loaded")))
    out = tmp_path / "m.pt"
    one_line_error(capsys, ["train", "--task", "lm", "--model", str(tiny_gpt2_lm_dir), "--train-file",
                            str(lm_corpus / "train.txt"), "--validation-file", str(lm_corpus / "heldout.txt"),
                            "--max-length", "1", "--out", str(out), "--quiet"],
                   "--max-length 1: a language model's block needs at least 2 tokens", [out])


def test_lm_needs_a_model(tmp_path, lm_corpus, capsys):
    one_line_error(capsys, ["train", "--task", "lm", "--train-file", str(lm_corpus / "train.txt"),
                            "--validation-file", str(lm_corpus / "heldout.txt"), "--out",
                            str(tmp_path / "m.pt")], "--task lm needs --model", [tmp_path / "m.pt"])


def test_lm_checkpoint_refuses_classification_data(lm_checkpoint, tmp_path, capsys):
    dev = tmp_path / "dev.csv"
    dev.write_text("sentence,label\ngreat fun,positive\n")
    out = tmp_path / "out.json"
    one_line_error(capsys, ["deploy", str(lm_checkpoint), "--validation-file", str(dev), "--seeds", "1",
                            "--drift", "1d", "--json", str(out), "--quiet"], "not a .csv data file", [out])
    one_line_error(capsys, ["deploy", str(lm_checkpoint), "--seeds", "1", "--drift", "1d", "--json",
                            str(out), "--quiet"], "needs --validation-file", [out])


def test_classification_checkpoint_refuses_text_and_generate(tiny_checkpoint, lm_corpus, tmp_path, capsys):
    out = tmp_path / "out.json"
    base = ["deploy", str(tiny_checkpoint), "--seeds", "1", "--drift", "1d", "--json", str(out), "--quiet"]
    one_line_error(capsys, [*base, "--validation-file", str(lm_corpus / "heldout.txt")],
                   "plain text is for --task lm checkpoints", [out])
    one_line_error(capsys, [*base, "--generate", "3", "--prompt", "hi"],
                   "--generate is for language-model", [out])


def test_generate_options_are_checked_first(lm_checkpoint, lm_corpus, tmp_path, capsys):
    base = ["deploy", str(lm_checkpoint), "--validation-file", str(lm_corpus / "heldout.txt"), "--seeds", "1",
            "--drift", "1d", "--json", str(tmp_path / "o.json"), "--quiet"]
    one_line_error(capsys, [*base, "--generate", "2"], "needs at least one --prompt", [tmp_path / "o.json"])
    one_line_error(capsys, [*base, "--prompt", "x"], "--prompt needs --generate", [tmp_path / "o.json"])
    one_line_error(capsys, [*base, "--generate", "0", "--prompt", "x"], "at least 1 token",
                   [tmp_path / "o.json"])


@pytest.mark.parametrize("command", ["deploy", "compare"])
def test_a_prompt_the_model_cannot_take_ends_the_command_before_its_sweep(command, lm_checkpoint, lm_corpus,
                                                                          tmp_path, monkeypatch, capsys):
    def sweep(*args, **kwargs):
        raise AssertionError("the sweep ran before the prompts were tried")
    monkeypatch.setattr("imc_sim.deploy.run.deploy_checkpoint", sweep)
    monkeypatch.setattr("imc_sim.deploy.compare.compare_checkpoints", sweep)
    base = [command, str(lm_checkpoint), "--validation-file", str(lm_corpus / "heldout.txt"), "--seeds", "1",
            "--drift", "1d", "--json", str(tmp_path / "o.json"), "--quiet", "--generate", "2"]
    one_line_error(capsys, [*base, "--prompt", "   "], "--prompt '   ' has no tokens", [tmp_path / "o.json"])
    one_line_error(capsys, [*base, "--prompt", "great fun " * 40], "plus --generate", [tmp_path / "o.json"])


def test_continuations_on_a_static_range_chip_calibrate_as_its_sweep_does(lm_checkpoint, lm_corpus, tmp_path,
                                                                           capsys):
    """``deploy --generate`` on pcm-chip (static input ranges) used to fail: the continuations'
    deployment was never calibrated. It now takes its ranges where the sweep takes them."""
    held = ["--validation-file", str(lm_corpus / "heldout.txt"), "--quiet", "--drift", "1d"]
    assert main(["deploy", str(lm_checkpoint), "--device", "pcm-chip", "--seeds", "1", "--generate", "2",
                 "--prompt", "great fun", *held]) == 0
    assert "prompt: 'great fun'" in capsys.readouterr().out
    from imc_sim.deploy.generate import continuations_under_drift

    source = DataSource(validation_file=str(lm_corpus / "heldout.txt"))
    by_dev = continuations_under_drift(lm_checkpoint, "pcm-chip", ["1d"], ["great fun"], 2, source=source,
                                       input_ranges="dev")
    assert by_dev.times == (86400.0,) and len(by_dev.on_chip[0]) == 1
    with pytest.raises(ImcSimError, match="holds no static input ranges"):
        continuations_under_drift(lm_checkpoint, "pcm-chip", ["1d"], ["great fun"], 2, source=source,
                                  input_ranges="checkpoint")


@pytest.mark.parametrize("prompts, new_tokens, times, message", [
    ("great fun", 2, ["1d"], "prompts is a non-empty list of texts, not 'great fun'"),
    ([], 2, ["1d"], "prompts is a non-empty list of texts"),
    (["great fun"], 0, ["1d"], "new_tokens is a count of tokens, at least 1, not 0"),
    (["great fun"], 2, [], "no drift time given"),
    (["great fun"], 2, ["1d", 86400], "drift time 1d is given twice"),
])
def test_continuation_arguments_are_checked_before_loading(prompts, new_tokens, times, message, lm_checkpoint,
                                                           monkeypatch):
    from imc_sim.deploy import generate

    monkeypatch.setattr(generate, "load_model", lambda *a, **k: pytest.fail("loaded before the check"))
    with pytest.raises(ImcSimError, match=message):
        generate.continuations_under_drift(lm_checkpoint, "pcm", times, prompts, new_tokens)


def test_an_encoder_is_refused_as_a_language_model(tmp_path, tiny_model_dir, lm_corpus, capsys):
    """The training audit: a BERT folder loads as BertLMHeadModel without is_decoder, attends both
    ways, and trained to a perplexity that read the tokens it predicted."""
    assert train_lm(tmp_path / "m.pt", tiny_model_dir, lm_corpus) == 2
    err = capsys.readouterr().err.strip()
    assert "is not causal: its prediction at the first token changes with a later token" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "m.pt").exists()


def test_a_causal_model_passes_and_a_decoder_bert_too():
    from conftest import make_tiny_gpt2_lm
    from transformers import BertConfig, BertLMHeadModel

    gpt2 = make_tiny_gpt2_lm(vocab_size=100).train()
    lm.check_causal(gpt2, "gpt2")
    assert gpt2.training  # left as it was
    def bert(decoder: bool) -> BertLMHeadModel:
        return BertLMHeadModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, intermediate_size=64, is_decoder=decoder))

    lm.check_causal(bert(decoder=True), "bert decoder")
    with pytest.raises(ImcSimError, match="model 'bert' \\(bert\\) is not causal"):
        lm.check_causal(bert(decoder=False), "bert")
