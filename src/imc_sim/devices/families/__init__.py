"""The device families, one module each, found by name: a module here that defines a
:class:`~imc_sim.devices.family.DeviceFamily` subclass with its own ``model`` is the law of every
profile whose ``model:`` names it. Adding a device law is one module here plus a YAML profile in
``device_models/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from imc_sim.devices.family import DeviceFamily

if TYPE_CHECKING:
    from imc_sim.devices.profile import DeviceProfile


def _discover() -> dict[str, type[DeviceFamily]]:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    found: dict[str, type[DeviceFamily]] = {}
    stack = list(DeviceFamily.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "model" in vars(cls) and cls.__module__.startswith(f"{__name__}."):
            found[cls.model] = cls
    return dict(sorted(found.items()))


FAMILIES = _discover()  # the profile's ``model:`` value -> its family


def build_family(profile: DeviceProfile) -> DeviceFamily:
    """The device family of a validated ``profile``, with its parameters."""
    return FAMILIES[profile.model].from_profile(profile)
