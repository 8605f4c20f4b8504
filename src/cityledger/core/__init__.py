"""Core: encoding, keys and signatures, hashing, the authenticated state tree, storage."""
