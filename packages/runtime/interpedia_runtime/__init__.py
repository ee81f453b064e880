"""Language-model and SAE runtime: loading, hooks, encoding, shared by inference and trainer.

Public API (import from the submodules; this package stays cheap to import):
- `interpedia_runtime.packaged.ensure_packaged_model() -> str`
- `interpedia_runtime.models.load_model(model_id, device="cpu", dtype="float32") -> LoadedModel`
- `interpedia_runtime.models.tiny_random_model() -> LoadedModel`
- `interpedia_runtime.saes.SaeRegistry`, `load_sae(path_or_release, ...)`, `encode_tokens(...)`
"""
