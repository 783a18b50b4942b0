"""restrax's rules: what is only moved, compressor and size per type, config validation."""

from __future__ import annotations

import pytest

from straxd.core.config_docs import validate_document
from straxd.core.errors import ConfigInvalid
from straxd.core.restrax_config import (
    LEGACY_KEYS,
    RestraxConfig,
    compressor_and_size,
    run_rate_mbs,
    skip_reason,
)

CONFIG = RestraxConfig()


@pytest.mark.parametrize(
    ("data_type", "n_chunks", "mode", "skipped"),
    [
        ("raw_records", 1, "tpc_bkg", None),
        ("peaklets", 5, "tpc_bkg", None),
        ("peaklets", 2, "tpc_bkg", "2 chunks"),
        ("event_info", 50, "tpc_bkg", "skip_compression"),
        ("raw_records", 50, "tpc_pmtgain", "excluded"),
    ],
)
def test_skip_rules(data_type: str, n_chunks: int, mode: str, skipped: str | None) -> None:
    reason = skip_reason(data_type, n_chunks, mode, CONFIG)
    assert (reason is None) if skipped is None else (skipped in str(reason))
    assert skip_reason(data_type, 99, "x", RestraxConfig(bypass_mode=True)) == "bypass mode"


@pytest.mark.parametrize(
    ("data_type", "rate", "n_tries", "expected"),
    [
        ("raw_records", 20, 0, ("bz2", 5000)),  # light rate: the strong codec
        ("raw_records", 80, 0, ("zstd", 5000)),  # heavy rate: the fast one
        ("records", 20, 3, ("zstd", 5000)),  # many tries: the fast one
        ("peaklets", 20, 0, ("zstd", 1500)),  # peak* matches (the original never matched it)
        ("peak_basics", 20, 0, ("zstd", 1500)),
        ("lone_hits", 20, 0, ("lz4", 1500)),  # others keep their compressor
    ],
)
def test_compressor_and_size(
    data_type: str, rate: float, n_tries: int, expected: tuple[str, float]
) -> None:
    assert compressor_and_size(data_type, "lz4", rate, n_tries, CONFIG) == expected


def test_blosc_capped() -> None:
    compressors = {**CONFIG.target_compressor, "peak*": "blosc"}
    sizes = {**CONFIG.target_size, "peak*": 4000.0}
    config = RestraxConfig(target_compressor=compressors, target_size=sizes)
    assert compressor_and_size("peaklets", "lz4", 1, 0, config) == ("blosc", 1500)


def test_rate_sums_averages() -> None:
    assert run_rate_mbs({}) == 100
    assert run_rate_mbs({"tpc": {"avg": 30.5, "max": 90}, "neutron_veto": {"avg": 2}}) == 32.5
    assert run_rate_mbs({"tpc": {"max": 90}}) == 100


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"target_size": {"_other": 1500}}, "_raw_records"),
        ({"target_compressor": {"_other": None}}, "_raw_record_compressor_light"),
        ({"max_tries": "five"}, "max_tries"),
        ({"target_compressor": {"peak*": "gzip", "_raw_record_compressor_light": "bz2",
                                "_raw_record_compressor_heavy": "zstd", "_other": None}},
         "gzip"),
        ({"hostname": "eb9"}, "unknown keys"),
    ],
)  # fmt: skip
def test_bad_documents(document: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigInvalid, match=message):
        validate_document({"name": "restrax_config", **document}, RestraxConfig, LEGACY_KEYS)


def test_original_keys_ignored() -> None:
    loaded = validate_document(
        {"name": "restrax_config", "max_workers": 5, "user": "x"}, RestraxConfig, LEGACY_KEYS
    )
    assert loaded.ignored_keys == ("max_workers",)
