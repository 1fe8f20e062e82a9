"""Trusted OpenPGP keys and detached-signature verification."""
