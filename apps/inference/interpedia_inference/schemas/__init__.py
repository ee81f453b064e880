"""Wire models of the inference service: the source of truth for schemas/inference.json.

Names follow the path (`ActivationAllRequest`/`ActivationAllResponse` for
`POST /v1/activation/all`); field names follow Neuronpedia's inference server (snake_case,
plus its few camelCase fields via aliases) so `neuronpedia-inference-client` works unchanged.
"""
