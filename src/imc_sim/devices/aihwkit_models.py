"""A device profile as an aihwkit noise model (programming, drift, read noise).

aihwkit 1.1.0 quirks handled here (each covered by a test in ``tests/test_aihwkit_quirks.py``):
- ``PCMLikeNoiseModel(prog_coeff_g_max_reference=...)`` never stores the attribute (AttributeError
  at the first programming), and explicit coefficients silently take ``g_max`` as their
  reference: the reference is set on the object after construction;
- ``ReRamWan2022NoiseModel`` stores its 40 uS reference under a name it never reads, so the
  fitted uS polynomial is not rescaled when ``g_max`` differs: the reference is set explicitly;
- ``CustomDriftPCMLikeNoiseModel`` checks its table against the ``g_converter`` argument, so it
  must be given one.
"""

from __future__ import annotations

from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from aihwkit.inference.noise.base import BaseNoiseModel
from aihwkit.inference.noise.custom import StateIndependentNoiseModel
from aihwkit.inference.noise.pcm import CustomDriftPCMLikeNoiseModel, PCMLikeNoiseModel
from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel

from imc_sim.devices.noise_models import FeFETNoiseModel, GaussianWeightNoiseModel, IdealNoiseModel
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError

WAN2022_G_REF = 40.0  # uS, the conductance scale of aihwkit's ReRAM polynomial fit


def _pcm(profile: DeviceProfile) -> BaseNoiseModel:
    g_max = profile.conductance["g_max"]
    prog, drift, read = profile.programming, profile.drift, profile.read_noise
    kwargs = {
        "prog_coeff": list(prog["coeffs"]), "t_0": drift["t0"], "t_read": read["t_read"],
        "prog_noise_scale": prog["scale"], "read_noise_scale": read["scale"],
        "drift_scale": drift["scale"],
    }
    converter = SinglePairConductanceConverter(g_max=g_max)
    table = drift.get("table")
    if table is None:
        model: PCMLikeNoiseModel = PCMLikeNoiseModel(g_converter=converter, **kwargs)
    else:
        try:
            model = CustomDriftPCMLikeNoiseModel(
                {"g_lst": table["g"], "nu_mean_lst": table["nu_mean"], "nu_std_lst": table["nu_std"]},
                g_converter=converter, **kwargs,
            )
        except ValueError as exc:
            raise ImcSimError(f"profile {profile.path}: field drift.table: {exc}") from exc
    model.prog_coeff_g_max_reference = prog["coeffs_g_ref"]
    return model


def _state_independent(profile: DeviceProfile) -> BaseNoiseModel:
    prog, drift, read = profile.programming, profile.drift, profile.read_noise
    return StateIndependentNoiseModel(
        g_max=profile.conductance["g_max"], prog_coeff=list(prog["coeffs"]),
        prog_noise_scale=prog["scale"], drift_nu_mean=drift["nu_mean"], drift_nu_std=drift["nu_std"],
        drift_scale=drift["scale"], t_0=drift["t0"], read_noise_scale=read["scale"],
        t_read=read["t_read"],
    )


def _reram(profile: DeviceProfile) -> BaseNoiseModel:
    model = ReRamWan2022NoiseModel(g_max=profile.conductance["g_max"],
                                   noise_scale=profile.programming["scale"])
    model.coeff_g_max_reference = WAN2022_G_REF
    return model


def _fefet(profile: DeviceProfile) -> BaseNoiseModel:
    cond, prog, drift = profile.conductance, profile.programming, profile.drift
    return FeFETNoiseModel(
        g_max=cond["g_max"], g_min=cond["g_min"], n_domains=prog["n_domains"],
        sigma_floor=prog["sigma_floor"], prog_scale=prog["scale"], t0=drift["t0"],
        relax_per_decade=drift["relax_per_decade"], relax_spread=drift["relax_spread"],
        g_relax=drift["g_relax"], drift_scale=drift["scale"],
        read_relative=profile.read_noise["relative"],
    )


def _gaussian(profile: DeviceProfile) -> BaseNoiseModel:
    return GaussianWeightNoiseModel(profile.programming["sigma"], profile.programming["relative"])


BUILDERS = {
    "pcm": _pcm,
    "state-independent": _state_independent,
    "reram-wan2022": _reram,
    "fefet": _fefet,
    "gaussian": _gaussian,
    "ideal": lambda profile: IdealNoiseModel(),
}


def build_noise_model(profile: DeviceProfile) -> BaseNoiseModel:
    """The aihwkit noise model (programming, drift, read noise) of ``profile``."""
    return BUILDERS[profile.model](profile)
