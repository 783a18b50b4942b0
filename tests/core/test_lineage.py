"""Lineage hashes equal strax's: the documented test vectors and random structures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.errors import BadInput
from straxd.core.lineage import DataKey, deterministic_hash


class TestVectors:
    @pytest.mark.parametrize(
        ("lineage", "expected"),
        [
            ({"raw_records_mv": ["DAQReader", "0.0.0", {}]}, "rfzvpzj4mf"),
            ({"raw_records_mv": ["DAQReader", "MOCKTESTDATA", {}]}, "z7q2d2ye2t"),
            ({}, "s7ixbykvb3"),
            ({"records": ("Records", "0.0.0", {"recs_per_chunk": 10})}, "7t7qojy7td"),
        ],
    )
    def test_documented_vectors(self, lineage: dict[str, Any], expected: str) -> None:
        """Section 3.3's vectors, including the public raw_records folder name."""
        assert deterministic_hash(lineage) == expected

    def test_key_names_the_folder(self) -> None:
        """DataKey prints as <run_id>-<data_type>-<hash>."""
        key = DataKey("009104", "raw_records", {"raw_records_mv": ("DAQReader", "0.0.0", {})})
        assert str(key) == "009104-raw_records-rfzvpzj4mf"

    @pytest.mark.parametrize("run_id", ["1-2", "_super", "", "a/b"])
    def test_bad_run_ids(self, run_id: str) -> None:
        """Run ids that cannot name a folder are refused."""
        with pytest.raises(BadInput, match="invalid run id"):
            DataKey(run_id, "records", {})


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.integers(-1000, 1000).map(np.int64),
    st.floats(-1e3, 1e3).map(np.float32),
)
structures = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.lists(st.integers(0, 9), max_size=5).map(np.array),
    ),
    max_leaves=20,
)


class TestAgainstStrax:
    @settings(max_examples=300, deadline=None)
    @given(thing=st.dictionaries(st.text(max_size=8), structures, max_size=5))
    def test_equal_to_strax(self, thing: dict[str, Any]) -> None:
        """Random nested lineages hash as strax hashes them."""
        assert deterministic_hash(thing) == strax.deterministic_hash(thing)
