"""Off-chain services: what runs beside the ledger and keeps personal data off it."""
