"""Shared settings, errors, CLI entry point and process supervision."""
