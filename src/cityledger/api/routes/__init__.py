"""The REST routes, one file per surface: ledger.py (txs, blocks, accounts, state, module queries,
status, health, metrics) and identity.py (DIDs, anchored AnonCreds objects, devices, the hosted
issuer offices, the verifier). A new module's surface goes in routes/<module>.py, wired in api/app.py.
"""
