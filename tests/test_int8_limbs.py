"""The int8 product on CPUs without VNNI: oneDNN's kernels there add pairs of uint8 x int8 products
in saturating 16-bit words, so 8-bit limbs against full-range codes come out wrong; the probe in
imc_sim/crossbar/int8_product.py then holds the limbs to 7 bits. ``ONEDNN_MAX_CPU_ISA`` makes this
machine's oneDNN take those kernels (it is read once per process: each case runs in its own)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from imc_sim.crossbar import int8_product
from imc_sim.host import this_host

PROBE = """
import torch
from imc_sim.crossbar import int8_product
from imc_sim.crossbar.int8_product import Int8Variance, Int8Weights, to_uint8_codes

limbs = int8_product.limbs()
torch.manual_seed(0)
weight = torch.randn(64, 256) * torch.rand(64, 1)
weight[0], weight[1] = 1.0, -1.0  # every limb at its largest
codes = torch.randint(-127, 128, (512, 256)).float()
codes[:8], codes[8:16] = 127.0, -127.0  # every code at its largest
exact = codes.double() @ weight.double().T
got = Int8Weights.pack(weight).product(to_uint8_codes(codes)).double()
m = weight.abs().amax(1).double()
bound = codes.abs().sum(1, keepdim=True).double() * m * limbs.two_limb_error + 1e-5 * exact.abs()
var = weight.abs()  # the squares' product: uint8 levels up to 255 against the limbs
got_var, step = Int8Variance.pack(var).variance(to_uint8_codes(codes))
step, squares = step.double()[:, None], codes.double().square()
exact_var = squares @ var.double().T
var_bound = step * var.sum(1).double() + squares.sum(1, keepdim=True) * limbs.one_limb_error
var_error = (got_var.double() * step - exact_var).abs()
print(limbs.largest, bool(((got - exact).abs() <= bound).all()),
      bool((var_error <= var_bound + 1e-6 * exact_var).all()))
"""


def run_probe(isa: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(int8_product.limbs() is None, reason="no exact int8 product in this torch")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction sets only")
@pytest.mark.parametrize("isa", [None, "AVX2", "AVX512_CORE"], ids=["native", "avx2", "avx512-no-vnni"])
def test_the_int8_product_stays_exact_with_and_without_vnni(isa):
    """Natively the limbs reach 127 where the CPU has VNNI; held to AVX2 or to AVX-512 without
    VNNI they are 7-bit, and the product of full-range codes and limbs at their largest stays
    within its limb bound (with 8-bit limbs there it was wrong in 98 % of the outputs)."""
    largest, product_ok, variance_ok = run_probe(isa)
    expected = 127 if isa is None and this_host().vnni else 63
    assert int(largest) == expected
    assert product_ok == "True" and variance_ok == "True"
