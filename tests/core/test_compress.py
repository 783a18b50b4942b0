"""Codecs: byte-compatible with strax 2.2.3's in both directions."""

from __future__ import annotations

import io

import numpy as np
import pytest
import strax
from hypothesis import given, settings
from hypothesis import strategies as st

from straxd.core.compress import CODECS, decompress_file_bytes, get_codec
from straxd.core.errors import BadInput, DataCorrupted

NAMES = sorted(CODECS)


class TestCrossDecode:
    @pytest.mark.parametrize("name", NAMES)
    @settings(max_examples=40, deadline=None)
    @given(payload=st.binary(min_size=0, max_size=5000).map(lambda b: b[: len(b) // 8 * 8]))
    def test_strax_reads_ours_and_we_read_strax(self, name: str, payload: bytes) -> None:
        """What we compress strax decompresses, and the other way round."""
        arr = np.frombuffer(payload, dtype=np.int64)
        ours = get_codec(name).compress(payload)
        back = strax.io._load_file(io.BytesIO(ours), name, np.int64)
        np.testing.assert_array_equal(back, arr)
        theirs = strax.io.COMPRESSORS[name]["compress"](arr)
        assert get_codec(name).decompress(theirs) == payload

    def test_zstd_and_blosc_magic(self) -> None:
        """zstd frames start with the zstd magic, blosc with a version-2 blosc1 header."""
        data = np.arange(1000, dtype=np.int64).tobytes()
        assert get_codec("zstd").compress(data)[:4] == b"\x28\xb5\x2f\xfd"
        assert get_codec("blosc").compress(data)[:2] == b"\x02\x01"


class TestErrors:
    def test_unknown_codec(self) -> None:
        """Unknown names list the known ones."""
        with pytest.raises(BadInput, match="known: blosc, bz2, lz4, zstd"):
            get_codec("gzip")

    @pytest.mark.parametrize("name", NAMES)
    def test_truncated_input_names_the_source(self, name: str) -> None:
        """Half a compressed stream is an error naming where it came from."""
        packed = get_codec(name).compress(np.arange(5000, dtype=np.int64).tobytes())
        with pytest.raises(DataCorrupted, match="/data/x-000001"):
            decompress_file_bytes(name, packed[: len(packed) // 2], "/data/x-000001")
