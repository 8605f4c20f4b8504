"""`cityledger bench batteries` end to end at a tiny size: every figure is there and the chain holds one
report-root transaction per batch (the figures' values are not asserted: no timed assertions)."""

from __future__ import annotations

import pytest

from cityledger.tools.bench_batteries import DEFAULT_DOCUMENT, run


@pytest.mark.slow
def test_bench_batteries_reports_every_figure():
    result = run(batteries=4, reports=4, batch=4, iterations=1, document_path=DEFAULT_DOCUMENT, scheme="ed25519")
    for name in ("soh_reports_per_s", "soh_reports_per_s_workers", "bms_verify_per_s", "export_ms",
                 "restricted_access_ms", "raw_verify_ms", "verify_ms", "tier_read_ms", "validate_ms",
                 "reference_validate_ms", "validate_speedup", "restricted_reads_per_s_8_threads",
                 "group_commit_ratio"):
        assert result[name] > 0, name
    assert result["soh_reports"] == 16 and result["soh_batches"] == 4
    assert result["onchain_txs_per_report"] == 4 / 16  # one anchor_report_root per batch of four
