"""Every dtype equals strax 2.2.3's / straxen 4.0.0's: names, order, types, titles."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pytest
import strax

from straxd.core import dtypes, event_dtypes
from tests.oracle import CONTEXT_PRELUDE, straxen_eval

STRAXEN_TYPES = (
    "peaklets",
    "peaklet_classification",
    "merged_s2s",
    "peaks",
    "peak_basics",
    "peak_proximity",
    "events",
    "event_basics",
)


@pytest.fixture(scope="module")
def straxen_descrs() -> dict[str, str]:
    """repr(dtype.descr) of straxen's online plugins, computed once in the oracle environment."""
    code = (
        CONTEXT_PRELUDE
        + f"""
out = {{}}
for name in {STRAXEN_TYPES!r}:
    plugin = st._get_plugins((name,), "000001")[name]
    out[name] = repr(plugin.dtype_for(name).descr)
print(json.dumps(out))
"""
    )
    result: dict[str, str] = straxen_eval(code)
    return result


def _same(ours: np.dtype[Any], theirs: Any) -> None:
    theirs = np.dtype(theirs)
    assert ours.descr == theirs.descr
    assert ours.itemsize == theirs.itemsize
    assert ours == theirs


class TestStraxDtypes:
    @pytest.mark.parametrize("samples", [110, 50])
    def test_raw_records(self, samples: int) -> None:
        """raw_records equals strax.raw_record_dtype, 244 bytes at 110 samples."""
        _same(dtypes.raw_record_dtype(samples), strax.raw_record_dtype(samples))
        assert dtypes.raw_record_dtype().itemsize == 244

    def test_records(self) -> None:
        """records equals strax.record_dtype (257 bytes)."""
        _same(dtypes.record_dtype(), strax.record_dtype())
        assert dtypes.record_dtype().itemsize == 257

    def test_hits(self) -> None:
        """hits equals strax.hit_dtype (48 bytes)."""
        _same(dtypes.HIT_DTYPE, strax.hit_dtype)
        assert dtypes.HIT_DTYPE.itemsize == 48

    @pytest.mark.parametrize("top", [True, False])
    @pytest.mark.parametrize("start", [True, False])
    @pytest.mark.parametrize("timing", [True, False])
    def test_peak_dtype_variants(self, top: bool, start: bool, timing: bool) -> None:
        """peak_dtype equals strax's for every combination of optional fields."""
        ours = dtypes.peak_dtype(
            494, hits_timing=timing, store_data_top=top, store_data_start=start
        )
        theirs = strax.peak_dtype(
            494, hits_timing=timing, store_data_top=top, store_data_start=start
        )
        _same(ours, theirs)

    def test_peaklet_sizes(self) -> None:
        """Itemsizes of section 1.5: 5025 B with top and start, 3425 B online."""
        assert dtypes.peak_dtype(494, store_data_top=True, store_data_start=True).itemsize == 5025
        assert dtypes.peak_dtype(494).itemsize == 3425

    def test_merged_dtype_and_titles(self) -> None:
        """merged_dtype keeps first occurrences like strax; remove_titles like strax's."""
        a, b = dtypes.PEAKLET_CLASSIFICATION_DTYPE, dtypes.peak_dtype(494)
        _same(dtypes.merged_dtype([a, b]), strax.merged_dtype((a, b)))
        assert dtypes.remove_titles(b) == strax.remove_titles_from_dtype(b)

    def test_too_few_channels(self) -> None:
        """A one-channel peak dtype is refused, as strax does."""
        with pytest.raises(ValueError, match="two channels"):
            dtypes.peak_dtype(1)


class TestStraxenDtypes:
    @pytest.mark.parametrize(
        ("name", "ours"),
        [
            ("peaklets", dtypes.peak_dtype()),
            ("peaklet_classification", dtypes.PEAKLET_CLASSIFICATION_DTYPE),
            ("merged_s2s", dtypes.merged_s2s_dtype()),
            ("peaks", dtypes.peaks_dtype()),
            ("peak_basics", dtypes.PEAK_BASICS_DTYPE),
            ("peak_proximity", dtypes.PEAK_PROXIMITY_DTYPE),
            ("events", dtypes.EVENTS_DTYPE),
            ("event_basics", event_dtypes.event_basics_dtype()),
        ],
    )
    def test_equals_straxen_online(
        self, straxen_descrs: dict[str, str], name: str, ours: np.dtype[Any]
    ) -> None:
        """The dtype straxen 4.0.0's online vanilla plugin declares, title for title."""
        assert repr(ours.descr) == straxen_descrs[name]
        if not ours.isalignedstruct:  # padding fields of aligned dtypes do not round-trip
            _same(ours, ast.literal_eval(straxen_descrs[name]))

    def test_peaks_is_aligned(self) -> None:
        """peaks is built with align=True: 3432 B against 3426 B unaligned."""
        assert dtypes.peaks_dtype().itemsize == 3432
        assert dtypes.merged_s2s_dtype().itemsize == 3426
