"""Trainer settings (`INTERPEDIA_TRAINER_*`)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from interpedia_core.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTERPEDIA_TRAINER_", extra="ignore", populate_by_name=True
    )

    port: int = Field(default=5004, description="Port of the trainer service.")
    device: str = Field(default="cpu", description="Torch device for training and dashboards.")
    saes_dir: Path | None = Field(
        default=None, description="Where trained SAEs are written (default: <data_dir>/saes)."
    )
    corpus: str | None = Field(
        default=None,
        description="Default corpus: a folder of .txt, a .jsonl, or a dataset name "
        "(default: the State of the Union corpus in <cache_dir>/corpora/sotu).",
    )

    eval_contexts: int = Field(
        default=64, ge=1, description="Contexts in the fixed evaluation set (the corpus's last)."
    )
    eval_ce_contexts: int = Field(
        default=16,
        ge=0,
        description="Of those, how many also give CE loss and KL (three whole forwards each).",
    )
    eval_context_size: int = Field(default=128, ge=2, description="Tokens per evaluation context.")
    absorption_words: int = Field(
        default=1500, ge=100, description="Vocabulary words the absorption eval samples."
    )

    @property
    def resolved_saes_dir(self) -> Path:
        return self.saes_dir or self.data_dir / "saes"

    @property
    def resolved_corpus(self) -> str:
        return self.corpus or str(self.cache_dir / "corpora" / "sotu")
