"""The machine a benchmark records (imc_sim/host.py): parsed from /proc/cpuinfo, the limits from
the environment."""

from __future__ import annotations

import json
import os

import torch

from imc_sim.host import ISA_LIMITS, parse_cpuinfo, this_host

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni
processor\t: 1
model name\t: another
flags\t\t: fpu
"""


def test_the_first_processor_names_the_cpu_and_its_flags():
    model, flags = parse_cpuinfo(CPUINFO)
    assert model == "AMD EPYC 9R14"
    assert {"avx2", "avx512f", "avx512_vnni"} <= flags and "fpu" in flags
    assert parse_cpuinfo("") == ("unknown", frozenset())


def test_vnni_and_avx512_come_from_the_flags_and_the_limits_from_the_environment(tmp_path, monkeypatch):
    for flags, avx512, vnni in (("avx2 avx512f avx512_vnni", True, True), ("avx2 avx_vnni", False, True),
                                ("avx2 avx512f", True, False), ("sse2", False, False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"model name\t: X\nflags\t\t: {flags}\n")
        for name in ISA_LIMITS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
        host = this_host(cpuinfo=info)
        assert (host.avx512, host.vnni) == (avx512, vnni), flags
        assert host.isa_limits == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
        assert "ONEDNN_MAX_CPU_ISA=AVX2" in host.describe()
        assert ("with VNNI" in host.describe()) == vnni


def test_this_machine_as_json(tmp_path):
    host = this_host(torch.device("cpu"), cpuinfo=tmp_path / "absent")
    assert host.cpu == "unknown" and not host.vnni
    assert host.cores == (os.cpu_count() or 1) and host.threads == torch.get_num_threads()
    assert host.torch_capability == torch.backends.cpu.get_cpu_capability() and host.gpu is None
    assert json.loads(json.dumps(host.to_json()))["threads"] == host.threads
