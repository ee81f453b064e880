"""Which engine serves, and replacing it at run time (POST /initialize).

The configured model and SAEs load in the background once the port is open (`app._load`).
`/initialize` may then ask for another model, or other sources: the new engine is built in a
worker thread while the old one keeps serving, and the swap is one assignment, so a request
that already holds the old engine (a lens stream, a generation, a queued activation) finishes
on it; the old engine's batcher stops once nothing is queued, running or generating on it,
and a request that reaches it after that runs alone on the old model (`ActivationBatcher.submit`).
A load that fails leaves the old engine serving and answers 400 with why. Only models
available on this machine load (the packaged one, a local folder, the Hugging Face cache):
nothing is downloaded while serving.
"""

import asyncio
import logging

from interpedia_core.errors import InterpediaError, InvalidInput
from interpedia_inference.engine import Engine, build_engine
from interpedia_inference.schemas.capabilities import InitializeRequest
from interpedia_inference.settings import InferenceSettings
from interpedia_runtime.models import available_offline

logger = logging.getLogger(__name__)

# How often a replaced engine is checked for work still running on it.
RETIRE_POLL_S = 0.1
# The longest load-failure reason passed on to the caller.
MAX_REASON = 500


def target_settings(
    serving: InferenceSettings,
    engine: Engine | None,
    custom_hf_model_id: str | None,
    body: InitializeRequest | None,
) -> InferenceSettings | None:
    """The settings of the engine to load, or None when the serving one is already it.

    A new model brings only the sources named with it (the configured ones belong to the
    old model); the same model with `sae_sources` reloads with those."""
    body = body or InitializeRequest()
    if body.model_id and custom_hf_model_id and body.model_id != custom_hf_model_id:
        raise InvalidInput("model_id and custom_hf_model_id name different models")
    requested = body.model_id or custom_hf_model_id
    same_model = requested is None or (engine is not None and requested in engine.model_names)
    if same_model and body.sae_sources is None and body.sae_source_set is None:
        return None
    return serving.model_copy(
        update={
            "model_id": serving.model_id if same_model else requested,
            "sae_sources": (
                body.sae_sources
                if body.sae_sources is not None
                else (serving.sae_sources if same_model else [])
            ),
            "sae_source_set": body.sae_source_set or serving.sae_source_set,
        }
    )


def load_engine(settings: InferenceSettings) -> Engine:
    """Build the engine of `settings` (slow: run it off the event loop); 400 with the reason
    when the model or a source cannot load here."""
    what = f"model {settings.model_id!r} with sources {settings.sae_sources}"
    if not available_offline(settings.model_id):
        raise InvalidInput(
            f"model {settings.model_id!r} is not available on this machine: give the packaged "
            "model, a local folder or a model in the Hugging Face cache (nothing is downloaded "
            "while serving)"
        )
    try:
        return build_engine(settings)
    except InterpediaError as exc:
        reason = exc.message
    except Exception as exc:  # whatever transformers, SAELens or torch raise for a bad load
        logger.warning("loading %s failed", what, exc_info=True)
        reason = f"{type(exc).__name__}: {exc}"
    raise InvalidInput(f"could not load {what}: {reason[:MAX_REASON]}")


async def retire(engine: Engine) -> None:
    """Stop a replaced engine's batcher once no request is queued, batched or generating on
    it (requests that resolved it before the swap finish first)."""
    # Polled: the batcher and the generations have no event to wait on, and this runs
    # once per switch.
    while not engine.idle():  # noqa: ASYNC110
        await asyncio.sleep(RETIRE_POLL_S)
    await engine.batcher.stop()
    logger.info("stopped the replaced engine of %s", engine.model.model_id)
