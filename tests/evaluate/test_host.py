"""What results.json records of the machine (jax_ssl/evaluate/host.py)."""

from jax_ssl.evaluate import host


def test_the_vector_instruction_set_is_read_from_the_cpu_flags(tmp_path):
  """One model name ("AMD EPYC") covers CPUs several times apart: the flags tell them apart."""
  cases = {"fpu sse2 avx avx2 fma avx512f avx512bw": "AVX-512",
           "fpu sse2 avx avx2 fma": "AVX2",
           "fp asimd evtstrm aes sve": None}
  for flags, expected in cases.items():
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n")
    assert host.cpu_vector_isa(str(cpuinfo)) == expected, flags
  assert host.cpu_vector_isa(str(tmp_path / "absent")) is None


def test_describe_names_the_cpu_its_instruction_set_and_the_devices():
  described = host.describe()
  assert set(described) == {"cpu", "cpu_isa", "cpu_count", "devices", "processes"}
  assert described["cpu_isa"] == host.cpu_vector_isa()
  assert described["cpu_count"] >= 1 and described["devices"].endswith("cpu")
