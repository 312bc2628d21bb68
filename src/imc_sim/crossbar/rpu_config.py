"""A device profile as aihwkit's ``TorchInferenceRPUConfig`` (one tile's periphery and mapping).

aihwkit 1.1.0's torch tiles refuse ``forward.w_noise`` (ConfigError): the config keeps it 0 and
imc-sim's fused periphery draws the weight read noise itself at every MVM (``periphery.w_noise`` and
the noise model's ``cycle_variance``; ``imc_sim.crossbar.periphery.read_variance``).
"""

from __future__ import annotations

from aihwkit.inference.compensation.drift import GlobalDriftCompensation, PerColumnDriftCompensation
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

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
