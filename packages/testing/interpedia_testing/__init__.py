"""Pytest plugin: throwaway embedded Postgres, tiny and packaged models."""
