"""Raw hook activations of a prompt, shaped for download: JSON, or one NumPy `.npy` array.

The inference service answers per layer; an export is one [layers, tokens, d_hook] block so a
notebook loads it with `numpy.load` (or `json.load`) and indexes it by (layer, position).
"""

import io

import numpy as np

from interpedia_clients.inference import models as inference
from interpedia_core.errors import UpstreamError
from interpedia_webapi.schemas import ActivationRawResponse


def raw_response(
    model_id: str, hook_point: str, answer: inference.ActivationRawResponse
) -> ActivationRawResponse:
    """The one prompt's activations as a [layers, tokens, d_hook] block."""
    (result,) = answer.results
    n_tokens = len(result.token_ids)
    if any(len(layer.values) != n_tokens for layer in result.activations):
        raise UpstreamError("the inference service sent activations for some tokens only")
    values = [layer.values for layer in result.activations]
    d_hook = len(values[0][0]) if values and values[0] else 0
    return ActivationRawResponse(
        modelId=model_id,
        hookPoint=hook_point,
        layers=[layer.layer for layer in result.activations],
        tokens=result.token_strings,
        tokenIds=result.token_ids,
        shape=[len(values), n_tokens, d_hook],
        values=values,
    )


def npy_bytes(export: ActivationRawResponse) -> bytes:
    """The values as a little-endian float32 `.npy` file (format 1.0, via numpy itself)."""
    buffer = io.BytesIO()
    array = np.asarray(export.values, dtype="<f4").reshape(export.shape)
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
