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

    def test_original_keys_ignored(self) -> None:
        """The original's AmBe tables are accepted and reported as ignored."""
        loaded = validate_document(
            {"name": "bootstrax_config", "ambe_modes": {}, "lease_s": 60.0},
            BootstraxConfig,
            LEGACY_KEYS,
        )
        assert loaded.ignored_keys == ("ambe_modes",)
        assert loaded.config.lease_s == 60.0
