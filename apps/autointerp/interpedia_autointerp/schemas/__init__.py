"""Wire models of the autointerp service: the source of truth for `schemas/autointerp.json`.

Names follow the path (`ExplainDefaultRequest` for `POST /v1/explain/default`).
The Neuronpedia-compatible paths keep Neuronpedia's field names, so its
generated `neuronpedia-autointerp-client` works against this service.
"""
