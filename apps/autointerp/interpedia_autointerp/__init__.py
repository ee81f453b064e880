"""Autointerp service: explanations, scores, embeddings and explanation search."""
