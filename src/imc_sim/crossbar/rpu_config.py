"""A device profile as aihwkit's ``TorchInferenceRPUConfig`` (one tile's periphery and mapping).

aihwkit 1.1.0's torch tiles refuse ``forward.w_noise`` (ConfigError): the config keeps it 0 and
imc-sim's fused periphery draws the weight read noise itself at every MVM (``periphery.w_noise`` and
the noise model's ``cycle_variance``; ``imc_sim.crossbar.periphery.read_noise``).

The profile's IR drop goes into ``forward.ir_drop`` and ``forward.ir_drop_g_ratio``
(:func:`imc_sim.crossbar.ir_drop.g_ratio`). aihwkit 1.1.0 computes it only in its compiled C++ tile
(rpucuda's ``applyIrDrop``); its torch tiles refuse it (ConfigError), so a ``TorchInferenceTile``
built from a config with IR drop fails: ``tests/test_ir_drop.py`` runs that config's torch tile
with ``ir_drop`` = 0 and rpucuda's IR-drop pass on its product.
"""

from __future__ import annotations

from aihwkit.inference.compensation.drift import GlobalDriftCompensation, PerColumnDriftCompensation
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

from imc_sim.crossbar.ir_drop import g_ratio
from imc_sim.devices.aihwkit_models import build_noise_model
from imc_sim.devices.profile import DeviceProfile


def _resolution(bits: int | None) -> float:
    """aihwkit's resolution for a signed ``bits``-bit converter: 1 / (2^bits - 2); 0 = ideal."""
    return 1.0 / (2**bits - 2) if bits else 0.0


def build_rpu_config(profile: DeviceProfile) -> TorchInferenceRPUConfig:
    """aihwkit's torch inference configuration for one tile of ``profile``."""
    periphery = profile.periphery
    config = TorchInferenceRPUConfig()
    forward = config.forward
    forward.is_perfect = periphery.perfect
    forward.inp_res = _resolution(periphery.dac_bits)
    forward.out_res = _resolution(periphery.adc_bits)
    forward.inp_bound = periphery.inp_bound
    forward.out_bound = periphery.out_bound
    forward.out_noise = periphery.out_noise
    forward.w_noise = 0.0  # drawn by imc_sim.crossbar.periphery instead (torch tiles refuse it)
    if periphery.ir_drop_on:
        forward.is_perfect = False  # rpucuda's perfect forward skips the IR drop
        forward.ir_drop = periphery.ir_drop
        forward.ir_drop_g_ratio = g_ratio(profile)
    forward.bound_management = BoundManagementType.NONE
    forward.noise_management = (NoiseManagementType.ABS_MAX if periphery.noise_management == "abs-max"
                                else NoiseManagementType.NONE)
    mapping = config.mapping
    mapping.digital_bias = True
    mapping.weight_scaling_omega = 0.0 if periphery.weight_scaling == "none" else 1.0
    mapping.weight_scaling_columnwise = periphery.weight_scaling == "per-column"
    mapping.max_input_size = 0  # tiles are cut by imc_sim.crossbar.tiles, not by aihwkit
    mapping.max_output_size = 0
    config.noise_model = build_noise_model(profile)
    config.drift_compensation = {
        "none": None, "global": GlobalDriftCompensation(), "per-column": PerColumnDriftCompensation(),
    }[profile.compensation]
    return config
