"""Users' own models of common Hugging Face architectures (an audit in session 29 built tiny random
ones of 15 architectures): a pre-trained encoder saved without its pooler or pre-classifier
deploys; ALBERT's shared block maps to tiles; LoRA's presets are what they say; ``kv-ff2`` knows
DeBERTa's, MPNet's and ALBERT's layers; a tokenizer larger than the embeddings is one line."""

from __future__ import annotations

import pytest
import torch
from conftest import save_with_tokenizer
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
)

from imc_sim.backbones import fingerprint, fresh_modules, is_head, load_backbone, model_reference
from imc_sim.cli import main
from imc_sim.crossbar.mapping import analog_layer_names
from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.peft.targets import find_targets
from imc_sim.tasks import get_task

SMALL = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64, "max_position_embeddings": 64}


def folder(model, tmp_path_factory, name: str):
    return save_with_tokenizer(model.eval(), tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module")
def bert_mlm_dir(tmp_path_factory):
    """A BERT saved as a masked LM: no pooler, no classifier (a pre-trained checkpoint's usual form)."""
    torch.manual_seed(0)
    return folder(BertForMaskedLM(BertConfig(**SMALL)), tmp_path_factory, "bert-mlm")


def test_modules_the_folder_lacks_are_head_and_out_of_the_fingerprint(bert_mlm_dir):
    first = load_backbone(model_reference(str(bert_mlm_dir)), get_task("sst2")).model
    assert fresh_modules(first) == {"bert.pooler.dense", "classifier"}
    assert is_head("bert.pooler.dense.weight", first) and is_head("base_model.model.classifier.bias", first)
    assert not is_head("bert.encoder.layer.0.output.dense.weight", first)
    torch.manual_seed(123)  # the pooler drawn afresh, other numbers: the base is the same
    second = load_backbone(model_reference(str(bert_mlm_dir)), get_task("sst2")).model
    assert not torch.equal(first.bert.pooler.dense.weight, second.bert.pooler.dense.weight)
    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize("method, options", [("grasp", ["--k", "4"]), ("lora", ["--targets", "all-linear"])])
def test_an_encoder_without_its_pooler_trains_the_pooler_and_deploys(method, options, bert_mlm_dir,
                                                                     tiny_glue, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--model", str(bert_mlm_dir), "--data-dir", str(tiny_glue), "--method", method,
                 *options, "--max-steps", "2", "--batch-size", "4", "--out", str(out), "--quiet"]) == 0
    state = torch.load(out, weights_only=True)["state"]
    assert any("pooler.dense" in name for name in state)  # trained and saved, not left random
    torch.manual_seed(99)  # deploy's fresh pooler differs; the checkpoint's replaces it
    assert main(["deploy", str(out), "--data-dir", str(tiny_glue), "--device", "pcm", "--drift", "1d",
                 "--seeds", "1", "--quiet"]) == 0, capsys.readouterr().err


@pytest.fixture(scope="module")
def albert():
    torch.manual_seed(0)
    return AlbertForSequenceClassification(AlbertConfig(embedding_size=16, **SMALL)).eval()


def test_albert_shared_block_maps_to_tiles(albert):
    names = analog_layer_names(albert)
    assert names == find_targets(albert, "all-linear") and len(names) == 6
    assert all(".albert_layers.0." in name for name in names)
    assert find_targets(albert, "ff2") == ["albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output"]


def test_kv_ff2_knows_deberta_and_albert():
    torch.manual_seed(0)
    deberta = DebertaV2ForSequenceClassification(DebertaV2Config(**SMALL))
    layer0 = [n.split("layer.0.")[1] for n in find_targets(deberta, "kv-ff2") if ".layer.0." in n]
    assert layer0 == ["attention.self.key_proj", "attention.self.value_proj", "output.dense"]


def tiny_distilbert() -> DistilBertForSequenceClassification:
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    return DistilBertForSequenceClassification(config).eval()


def test_a_preset_that_does_not_know_the_layers_is_refused():
    distil = tiny_distilbert()
    for module in list(distil.modules()):  # rename nothing: drop the FF2 layers' type instead
        if hasattr(module, "lin2"):
            module.lin2 = torch.nn.Identity()
    with pytest.raises(ImcSimError, match="target preset 'kv-ff2' does not know the layers of model type "
                                          "'distilbert'"):
        find_targets(distil, "kv-ff2")


def test_lora_targets_are_what_they_say():
    distil, lora = tiny_distilbert(), get_method("lora")
    with pytest.raises(ImcSimError, match="peft has no default layers for model type 'distilbert'; give"):
        lora.attach(distil, lora.make_config({}))
    distil = tiny_distilbert()
    expected = find_targets(distil, "all-linear")
    adapted = lora.attach(distil, lora.make_config({"targets": "all-linear"}))
    wrapped = sorted({n.split(".lora_A")[0].removeprefix("base_model.model.")
                      for n, _ in adapted.named_parameters() if ".lora_A." in n})
    assert wrapped == sorted(expected) and len(expected) == 6


def test_a_tokenizer_past_the_embeddings_is_one_line(tmp_path):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=30000, n_embd=32, n_layer=1, n_head=2, n_positions=64))
    path = save_with_tokenizer(model, tmp_path / "small-vocab")
    with pytest.raises(ImcSimError, match="its tokenizer has 30522 tokens but the model embeds only 30000"):
        load_backbone(model_reference(str(path)), get_task("lm"))
