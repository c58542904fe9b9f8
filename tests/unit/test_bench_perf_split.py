"""cpr_bench.perf_split: perf's report by library, read into the groups the breakdown shows."""

from __future__ import annotations

import pytest

from cpr_bench.perf_split import OTHER_LIBRARIES, group_of, parse_report

# As `perf report --no-children --sort dso --stdio -g none` prints it.
REPORT = """\
# Samples: 3K of event 'cpu-clock'
#
# Overhead  Shared Object
# ........  .......................................
#
    39.22%  libcrypto.so.3
    25.27%  libpython3.11.so.1.0
    15.24%  [kernel.kallsyms]
    11.64%  libc.so.6
     4.41%  loop.cpython-311-x86_64-linux-gnu.so
     3.71%  libssl.so.3
     0.17%  _ssl.cpython-311-x86_64-linux-gnu.so
     0.08%  _socket.cpython-311-x86_64-linux-gnu.so

"""


def test_libraries_are_summed_into_their_groups() -> None:
    shares = parse_report(REPORT.splitlines())
    assert shares["OpenSSL (TLS)"] == pytest.approx(0.3922 + 0.0371 + 0.0017)
    assert shares["kernel (system calls, TCP)"] == pytest.approx(0.1524)
    assert shares["uvloop / libuv"] == pytest.approx(0.0441)
    assert shares[OTHER_LIBRARIES] == pytest.approx(0.0008)
    assert sum(shares.values()) == pytest.approx(0.9974)


def test_an_unknown_library_is_other_and_haproxy_is_its_own() -> None:
    assert group_of("libfoo.so.1") == OTHER_LIBRARIES
    assert group_of("haproxy") == "HAProxy itself"
    assert group_of("libpython3.11.so.1.0").startswith("Python interpreter")
