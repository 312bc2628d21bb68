"""Keep a torchvision that cannot load its operators from breaking ``transformers``.

aihwkit 1.1.0 requires torchvision (for its experiment runners only; imc-sim never uses it). The
torchvision release built for torch 2.13.0 is, on PyPI, a CUDA build: beside torch's CPU build its
compiled operators do not load (``libc10_cuda.so`` is missing) and ``import torchvision`` raises
``operator torchvision::nms does not exist``. ``transformers`` imports torchvision whenever it is
installed (``modeling_utils`` -> ``image_utils``), so every model load would fail. The PyTorch CPU
index has a matching ``torchvision==0.28.0+cpu``; where that is not what got installed, this module
marks torchvision as absent (``sys.modules["torchvision"] = None``: ``importlib.util.find_spec``
then answers None and ``import torchvision`` raises ImportError), and transformers runs without it.
If transformers was imported first, it has cached its answer (``is_torchvision_available`` and the
other ``is_*`` checks are ``lru_cache``d); those caches are cleared so that it asks again.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def hide_broken_torchvision() -> bool:
    """Mark torchvision absent if it is installed but does not import; True if it was hidden."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return False
    try:
        importlib.import_module("torchvision")
    except Exception:  # RuntimeError (operators missing), OSError, ImportError: all equally fatal
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]
        _clear_transformers_answers()
        return True
    return False


def _clear_transformers_answers() -> None:
    """Forget transformers' cached ``is_*_available`` answers, if transformers is imported."""
    checks = sys.modules.get("transformers.utils.import_utils")
    for name, value in vars(checks).items() if checks is not None else ():
        if name.startswith("is_") and callable(getattr(value, "cache_clear", None)):
            value.cache_clear()
