"""Hardware names as the calculator reads them: a row's name or alias is that row, a name that
one row alone contains is that row, and a name that several rows contain is ambiguous, listing
them; `carbonlog estimate` says which row a name that is not the row's own resolved to."""

from __future__ import annotations

import pytest

from carbonlog.hardware import all_hardware, candidates, lookup


def test_a_bare_family_name_is_its_sxm_row_and_names_its_siblings():
    row = lookup("A100")
    assert row.name == "A100 SXM4 80 GB" and not row.named("A100") and row.named("a100-sxm4-80gb")
    assert [c.name for c in candidates("A100")] == [
        "A100 PCIe 40 GB",
        "A100 PCIe 80 GB",
        "A100 SXM4 40 GB",
        "A100 SXM4 80 GB",
    ]


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("A100 80GB", {"A100 PCIe 80 GB", "A100 SXM4 80 GB"}),  # was the PCIe row, silently
        ("A100 40 GB", {"A100 PCIe 40 GB", "A100 SXM4 40 GB"}),  # was the PCIe row, silently
        ("H100 80GB", {"H100 PCIe", "H100 SXM"}),  # was the SXM row, silently
        ("V100 32GB", {"Tesla V100-PCIE-32GB", "Tesla V100-SXM2-32GB"}),  # was "unknown"
        ("V100 SXM2", {"Tesla V100-SXM2-16GB", "Tesla V100-SXM2-32GB"}),
    ],
)
def test_a_name_that_several_rows_contain_is_ambiguous_and_lists_them(name, rows):
    with pytest.raises(ValueError, match=f"ambiguous hardware '{name}'") as refused:
        lookup(name)
    for row in rows:
        assert repr(row) in str(refused.value)


def test_every_row_is_found_by_its_own_name():
    for row in all_hardware():
        assert lookup(row.name) == row and row.named(row.name)
        assert row in candidates(row.name)


@pytest.mark.parametrize("name", ["A6000", "NVIDIA H100 80GB HBM3", "Xeon Gold 6148", "tpuv3"])
def test_a_name_one_row_alone_contains_is_that_row(name):
    assert [c.name for c in candidates(name)] == [lookup(name).name]
