"""Concept testing through the API: which features fire specifically on a concept's texts.

`POST /v1/concepts` enqueues a `trainer:concept_scores` job; its table comes back in
the job's `details` (`GET /v1/jobs/{id}`). Limits keep one job's arguments small JSON
and its work a few minutes on a CPU.
"""

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

MAX_CONCEPTS = 32
MAX_EXAMPLES = 200
MAX_EXAMPLE_CHARS = 1000
MAX_TOTAL_CHARS = 100_000

ExampleText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EXAMPLE_CHARS)
]


class ConceptSet(BaseModel):
    """A concept: its name and short texts that express it (one example each)."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = (
        Field(description="Names the concept's rows in the result.")
    )
    examples: list[ExampleText] = Field(
        min_length=1,
        max_length=MAX_EXAMPLES,
        description=f"At least one non-blank text of at most {MAX_EXAMPLE_CHARS} characters.",
    )


class ConceptsRequest(BaseModel):
    """Score concept sets against a source's features, as a job on the trainer queue."""

    model_id: str = Field("smollm2-135m", max_length=128, description="Model of the source.")
    source_id: str = Field(..., max_length=128, description="Source whose SAE is scored.")
    concepts: list[ConceptSet] | None = Field(
        None,
        min_length=1,
        max_length=MAX_CONCEPTS,
        description="Concept sets with distinct names (default: the builtin sets, "
        f"`GET /v1/concepts`); at most {MAX_TOTAL_CHARS} characters of examples in all.",
    )
    top_n: int = Field(5, ge=1, le=50, description="Features reported per concept.")
    base_documents: int = Field(
        20, ge=1, le=1000, description="Documents of the base corpus the concepts are set against."
    )
    corpus: str | None = Field(
        None,
        max_length=1024,
        description="Base corpus: folder of .txt, .jsonl, or dataset name (default: the "
        "service's corpus).",
    )

    @field_validator("concepts")
    @classmethod
    def _distinct_and_small(cls, concepts: list[ConceptSet] | None) -> list[ConceptSet] | None:
        if concepts is None:
            return None
        seen: set[str] = set()
        for concept in concepts:
            if concept.name in seen:
                raise ValueError(f"concept names must be distinct: {concept.name!r} repeats")
            seen.add(concept.name)
        total = sum(len(text) for concept in concepts for text in concept.examples)
        if total > MAX_TOTAL_CHARS:
            raise ValueError(
                f"the examples hold {total} characters; one job takes at most {MAX_TOTAL_CHARS}"
            )
        return concepts


class BuiltinConceptSet(BaseModel):
    """A concept set shipped with the trainer (the default of `POST /v1/concepts`)."""

    name: str
    n_examples: int = Field(description="How many example texts the set holds.")
    examples: list[str]


class ConceptsResponse(BaseModel):
    """The builtin concept sets, by name."""

    concepts: list[BuiltinConceptSet]
