"""Battery passports off chain: Tractus-X BatteryPass validation, Annex XIII access tiers, encrypted storage."""
