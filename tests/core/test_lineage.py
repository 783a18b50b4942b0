"""Lineage hashes and data keys equal strax's: documented vectors and random structures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.errors import BadInput
from straxd.core.lineage import DataKey, deterministic_hash, hashablize


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

    def test_length(self) -> None:
        """``length`` cuts the base32 digest, as strax."""
        lineage = {"records": ("Records", "0.0.0", {})}
        assert deterministic_hash(lineage, 16) == strax.deterministic_hash(lineage, 16)
        assert deterministic_hash(lineage, 16)[:10] == deterministic_hash(lineage)


class TestDataKey:
    def test_key_names_the_folder(self) -> None:
        """DataKey prints as <run_id>-<data_type>-<hash>, as strax's DataKey."""
        lineage = {"raw_records_mv": ("DAQReader", "0.0.0", {})}
        key = DataKey("009104", "raw_records", lineage)
        assert str(key) == "009104-raw_records-rfzvpzj4mf"
        assert str(key) == repr(strax.DataKey("009104", "raw_records", lineage))
        assert key.lineage_hash == "rfzvpzj4mf"

    def test_hash_fixed_at_construction(self) -> None:
        """The hash is taken when the key is made; the key is immutable."""
        lineage: dict[str, Any] = {"peaks": ["Peaks", "0.1", {"a": 1}]}
        key = DataKey("000001", "peaks", lineage)
        lineage["peaks"][2]["a"] = 2
        assert key.lineage_hash == strax.deterministic_hash({"peaks": ["Peaks", "0.1", {"a": 1}]})
        with pytest.raises(AttributeError):
            key.run_id = "000002"  # type: ignore[misc]

    @pytest.mark.parametrize("run_id", ["1-2", "_super", "", "a/b"])
    def test_bad_run_ids(self, run_id: str) -> None:
        """Run ids that cannot name a folder, and superruns, are refused."""
        with pytest.raises(BadInput, match=f"invalid run id {run_id!r}"):
            DataKey(run_id, "records", {})

    @pytest.mark.parametrize("data_type", ["", "a-b", "a/b", "pmt_temperature"])
    def test_bad_data_types(self, data_type: str) -> None:
        """Data types that would break the folder or file names are refused."""
        with pytest.raises(BadInput, match=f"invalid data type {data_type!r} for run 000001"):
            DataKey("000001", data_type, {})


numpy_scalars = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(np.int64),
    st.integers(-1000, 1000).map(np.int32),
    st.integers(0, 255).map(np.uint8),
    st.floats(-1e6, 1e6, width=32).map(np.float32),
    st.floats(allow_nan=False).map(np.float64),
)
numpy_arrays = st.one_of(
    st.lists(st.integers(-99, 99), max_size=5).map(np.array),
    st.lists(st.floats(-1e3, 1e3), max_size=5).map(np.array),
    st.lists(st.integers(0, 9), min_size=4, max_size=4).map(lambda v: np.array(v).reshape(2, 2)),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # nan and inf included: strax's JSON writes them as NaN/Infinity too
    st.text(max_size=8),
    numpy_scalars,
    numpy_arrays,
)
structures = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.dictionaries(st.integers(-5, 5), inner, max_size=3),
        st.frozensets(numpy_scalars.filter(lambda x: not np.isnan(x)), max_size=3),
    ),
    max_leaves=20,
)


class TestAgainstStrax:
    @settings(max_examples=400, deadline=None)
    @given(thing=st.dictionaries(st.text(max_size=8), structures, max_size=5))
    def test_equal_to_strax(self, thing: dict[str, Any]) -> None:
        """Random nested lineages hash (and hashablize) as strax's do."""
        assert deterministic_hash(thing) == strax.deterministic_hash(thing)
        assert hashablize(thing) == strax.utils.hashablize(thing)

    @settings(max_examples=100, deadline=None)
    @given(thing=structures)
    def test_any_structure(self, thing: Any) -> None:
        """Not only dicts: any structure hashes as in strax."""
        assert deterministic_hash(thing) == strax.deterministic_hash(thing)

    @pytest.mark.parametrize(
        "thing", [object(), {"a": np.bool_(True)}, frozenset({1}), {1: 1, "a": 2}]
    )
    def test_refused_as_strax_refuses(self, thing: Any) -> None:
        """Objects strax cannot hash are refused here too, with TypeError."""
        with pytest.raises(TypeError):
            strax.deterministic_hash(thing)
        with pytest.raises(TypeError):
            deterministic_hash(thing)
