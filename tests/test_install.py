"""A plain ``pip install .`` gives a working ``imc-sim``, even beside a torchvision that cannot load.

The slow test installs the package the way a user does (fresh virtual environment, ``pip install``)
and takes about 70 s with the package index reachable; run it with ``pytest -m slow
tests/test_install.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from imc_sim.torchvision_guard import hide_broken_torchvision

REPO = Path(__file__).resolve().parents[1]


def test_a_torchvision_that_does_not_import_is_hidden(tmp_path, monkeypatch):
    import importlib.util

    from transformers.utils.import_utils import is_torchvision_available

    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = sys.modules.pop("torchvision", None)
    try:
        is_torchvision_available.cache_clear()
        assert importlib.util.find_spec("torchvision") is not None
        assert is_torchvision_available()  # transformers imported first: its answer is cached
        assert hide_broken_torchvision() is True
        assert importlib.util.find_spec("torchvision") is None  # what transformers asks
        assert not is_torchvision_available()  # and it asked again
        with pytest.raises(ImportError):
            import torchvision  # noqa: F401
        assert hide_broken_torchvision() is False  # already settled
    finally:
        del sys.modules["torchvision"]
        if saved is not None:
            sys.modules["torchvision"] = saved
        is_torchvision_available.cache_clear()


def test_a_working_torchvision_is_left_alone(tmp_path, monkeypatch):
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("WORKS = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = sys.modules.pop("torchvision", None)
    try:
        assert hide_broken_torchvision() is False
        assert sys.modules["torchvision"].WORKS
    finally:
        del sys.modules["torchvision"]
        if saved is not None:
            sys.modules["torchvision"] = saved


@pytest.mark.slow
def test_fresh_venv_pip_install(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package only
    subprocess.run([bin_dir / "pip", "install", "-q", str(REPO)], check=True, env=env)
    help_text = subprocess.run([bin_dir / "imc-sim", "--help"], check=True, capture_output=True,
                               text=True, env=env).stdout
    assert "train" in help_text and "deploy" in help_text
    check = ("import transformers, imc_sim  # transformers first: its cached answers are redone\n"
             "from transformers import BertConfig, BertForSequenceClassification\n"
             "m = BertForSequenceClassification(BertConfig(hidden_size=8, num_hidden_layers=1, "
             "num_attention_heads=2, intermediate_size=8))\n"
             "print(type(m).__name__)\n")
    out = subprocess.run([bin_dir / "python", "-c", check], check=True, capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert out.stdout.strip() == "BertForSequenceClassification"
