"""Runs the whole platform: the supervisor behind `interpedia up` and `make demo`."""
