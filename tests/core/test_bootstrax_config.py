"""bootstrax's runtime config: the original's defaults, the retry ladder, validation."""

from __future__ import annotations

import random

import pytest

from straxd.core.bootstrax_config import LEGACY_KEYS, BootstraxConfig
from straxd.core.config_docs import validate_document
from straxd.core.errors import ConfigInvalid


class TestDefaults:
    def test_original_timeouts(self) -> None:
        """Defaults are the original script's constants."""
        config = BootstraxConfig()
        assert config.max_processing_time_s == 72 * 3600
        assert config.max_processing_time_after_end_s == 13 * 3600
        assert config.max_no_write_time_s == 30 * 60
        assert (config.max_failures, config.run_length_tolerance_s) == (10, 5.0)
        assert config.claim_order == "newest_first"

    def test_retry_ladder_with_jitter(self) -> None:
        """About 1, 5, 25, then 125 minutes, each within +-50 %."""
        config, rng = BootstraxConfig(), random.Random(1)
        for failures, minutes in [(0, 1), (1, 5), (2, 25), (3, 125), (7, 125)]:
            delays = [config.retry_delay_s(failures, rng) / 60 for _ in range(200)]
            assert minutes * 0.5 <= min(delays) < minutes * 0.6
            assert minutes * 1.4 < max(delays) <= minutes * 1.5


class TestValidation:
    def test_heartbeat_must_renew_within_the_lease(self) -> None:
        """A heartbeat slower than half the lease would let leases lapse: rejected."""
        with pytest.raises(ValueError, match="at most half of lease_s"):
            BootstraxConfig(lease_s=10, heartbeat_interval_s=6)

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ({"lease_s": "long"}, "lease_s"),
            ({"max_failures": 0}, "max_failures"),
            ({"claim_order": "random"}, "claim_order"),
            ({"mystery": 1}, "unknown keys"),
        ],
    )
    def test_bad_documents_rejected(self, document: dict[str, object], message: str) -> None:
        """Wrong types, out-of-range values and unknown keys reject the whole document."""
        with pytest.raises(ConfigInvalid, match=message):
            validate_document(
                {"name": "bootstrax_config", **document}, BootstraxConfig, LEGACY_KEYS
            )

    def test_original_ambe_document(self) -> None:
        """The original's document (AmBe split per host) is valid as it is."""
        loaded = validate_document(
            {
                "name": "bootstrax_config",
                "ambe_modes": {"eb3": "peaklets_only", "eb4": "default"},
                "modes_definitions": {
                    "peaklets_only": {"targets": ["peaklets"], "post_process": ["raw_records"]}
                },
            },
            BootstraxConfig,
            LEGACY_KEYS,
        )
        rules = loaded.config.target_rules()
        assert rules.modes_definitions["peaklets_only"].targets == ("peaklets",)

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ({"modes_definitions": {"x": {"targets": ["led_calibration"]}}}, "not data types"),
            ({"modes_definitions": {"x": {"targets": ["peaklets", "peaklets"]}}}, "twice"),
            ({"ambe_modes": {"eb3": "missing"}}, "modes_definitions lacks"),
            ({"kr83m_extra_targets": ["event_info_double"]}, "not data types"),
            ({"host_roles": {"eb2": "sometimes"}}, "host_roles"),
            ({"resource_table": [{"rate_mbs": 10, "cores_new": 1}]}, "resource_table"),
            ({"resource_table": []}, "resource_table"),
            ({"remove_target_after_fails": {"event*": "two"}}, "remove_target_after_fails"),
        ],
    )
    def test_bad_policy_rejected(self, document: dict[str, object], message: str) -> None:
        """Unknown or duplicate types and inconsistent tables reject the whole document."""
        with pytest.raises(ConfigInvalid, match=message):
            validate_document({"name": "bootstrax_config", **document}, BootstraxConfig)

    def test_roles(self) -> None:
        config = BootstraxConfig(host_roles={"eb0": "helper", "eb2.xenon.local": "never"})
        assert config.role_of("eb0.xenon.local") == "helper"
        assert config.role_of("eb2.xenon.local") == "never"
        assert config.role_of("eb4.xenon.local") == "process"
