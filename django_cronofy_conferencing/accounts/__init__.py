"""Linked accounts: linking (OAuth), tokens, OAuth state, push channels, key rotation."""
