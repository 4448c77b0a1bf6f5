"""``train.precision=auto``: the rule, from a cpuinfo text and whether there is a GPU."""

import pytest

from ggo.training.precision import auto_precision, cpu_has_native_bfloat16

# Abridged /proc/cpuinfo of a 2-core AVX-512 CPU; FLAGS replaced per case.
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme sse sse2 avx avx2 FLAGS
bugs\t\t: spectre_v1 spectre_v2

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2 avx avx2 FLAGS
bugs\t\t: spectre_v1 spectre_v2
"""


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("avx512f avx512_bf16 avx512_vnni", "mixed_bfloat16"),  # Cooper Lake, Sapphire Rapids, Zen 4
        ("avx512f amx_tile amx_bf16 amx_int8", "mixed_bfloat16"),  # AMX
        ("avx512f avx512_vnni", "float32"),  # AVX-512 without BF16: bfloat16 would be emulated
        ("", "float32"),
        ("avx512_bf16x", "float32"),  # a flag is a whole word
    ],
)
def test_auto_picks_mixed_bfloat16_only_on_a_cpu_with_native_bfloat16(flags, expected):
    assert auto_precision(gpu=False, cpuinfo=CPUINFO.replace("FLAGS", flags)) == expected


def test_auto_picks_mixed_float16_on_a_gpu_whatever_the_cpu():
    assert auto_precision(gpu=True, cpuinfo=CPUINFO.replace("FLAGS", "avx512_bf16")) == "mixed_float16"
    assert auto_precision(gpu=True, cpuinfo=None) == "mixed_float16"


def test_auto_is_float32_without_cpuinfo_as_on_other_systems():
    assert auto_precision(gpu=False, cpuinfo=None) == "float32"
    assert auto_precision(gpu=False, cpuinfo="") == "float32"


def test_only_the_flags_lines_count():
    assert not cpu_has_native_bfloat16("model name\t: avx512_bf16 special edition\nflags\t\t: sse avx\n")
    assert cpu_has_native_bfloat16("flags: sse amx_bf16\n")
