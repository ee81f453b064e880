"""Inference service: one language model and its SAEs behind HTTP."""
