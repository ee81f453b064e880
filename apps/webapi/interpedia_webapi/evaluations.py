"""Sources' evaluations (SAE-Bench outputs the trainer stores) as pages and clients read them.

Metrics are named as Neuronpedia's SAE-Bench page names them, `type||category||metric`
(`core||sparsity||l0`); `METRICS` lists the ones the pages show, in order, with how to
print them and whether higher is better.
"""

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import NotFound
from interpedia_db.models import Eval, Model, Source
from interpedia_webapi import catalog, charts


@dataclass(frozen=True)
class Metric:
    key: str  # type||category||metric
    label: str
    spec: str  # format spec
    higher_is_better: bool

    def value(self, flat: dict[str, float]) -> float | None:
        return flat.get(self.key)

    def show(self, value: float | None) -> str:
        return "—" if value is None or not math.isfinite(value) else format(value, self.spec)


METRICS = [
    Metric("core||reconstruction_quality||explained_variance", "Explained variance", ".3f", True),
    Metric("core||reconstruction_quality||mse", "MSE", ".4g", False),
    Metric("core||sparsity||l0", "L0", ".1f", False),
    Metric("core||model_performance_preservation||ce_loss_score", "CE loss recovered", ".3f", True),
    Metric("core||model_performance_preservation||ce_loss_delta", "Delta loss", ".4f", False),
    Metric("core||model_behavior_preservation||kl_div_score", "KL score", ".3f", True),
    Metric("core||misc_metrics||frac_dead", "Dead", ".1%", False),
    Metric("core||misc_metrics||frac_dense", "Dense (>10%)", ".1%", False),
    Metric(
        "absorption_first_letter||mean||mean_absorption_fraction_score",
        "Absorption",
        ".3f",
        False,
    ),
    Metric(
        "absorption_first_letter||mean||mean_full_absorption_score", "Full absorption", ".3f", False
    ),
]
METRIC_BY_KEY = {m.key: m for m in METRICS}


def flat_metrics(output: dict[str, Any]) -> dict[str, float]:
    """An output's `eval_result_metrics` as {"type||category||metric": value}."""
    kind = output.get("eval_type_id", "")
    flat = {}
    for category, values in (output.get("eval_result_metrics") or {}).items():
        if isinstance(values, dict):
            for name, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    flat[f"{kind}||{category}||{name}"] = float(value)
    return flat


@dataclass
class SourceEvals:
    """A source and its stored evaluations, by type."""

    source: Source
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated: dict[str, datetime] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        flat: dict[str, float] = {}
        for output in self.outputs.values():
            flat.update(flat_metrics(output))
        return flat


async def source_evals(session: AsyncSession, model_id: str, source_id: str) -> SourceEvals:
    source = await catalog.get_source(session, model_id, source_id)
    found = SourceEvals(source)
    for row in (
        await session.execute(
            select(Eval).where(Eval.model_id == model_id, Eval.source_id == source_id)
        )
    ).scalars():
        found.outputs[row.type_name] = row.output
        found.updated[row.type_name] = row.updated_at
    return found


async def model_evals(session: AsyncSession, model_id: str) -> list[SourceEvals]:
    """Every source of a model, by source set and layer, with whatever evals it has."""
    if await session.get(Model, model_id) is None:
        raise NotFound(f"no model {model_id}")
    sources = (
        (
            await session.execute(
                select(Source)
                .where(Source.model_id == model_id)
                .order_by(Source.set_name, Source.layer, Source.id)
            )
        )
        .scalars()
        .all()
    )
    by_id = {s.id: SourceEvals(s) for s in sources}
    for row in (await session.execute(select(Eval).where(Eval.model_id == model_id))).scalars():
        if row.source_id in by_id:
            by_id[row.source_id].outputs[row.type_name] = row.output
            by_id[row.source_id].updated[row.type_name] = row.updated_at
    return list(by_id.values())


def source_charts(found: SourceEvals) -> dict[str, charts.Chart]:
    """The source page's density histogram (core) and absorption by first letter."""
    out = {}
    core = found.outputs.get("core")
    hist = ((core or {}).get("eval_result_unstructured") or {}).get("feature_density_histogram")
    if hist:
        centres = [(a + b) / 2 for a, b in itertools.pairwise(hist["log10_density_edges"])]
        out["density"] = charts.histogram(
            hist["counts"], centres, x_label="log10 feature density", y_label="features"
        )
    details = (found.outputs.get("absorption_first_letter") or {}).get("eval_result_details")
    if details:
        out["absorption"] = charts.bar_chart(
            [d["first_letter"] for d in details],
            [d["mean_absorption_fraction"] for d in details],
            [
                f"{d['first_letter']}: {d['mean_absorption_fraction']:.3f} "
                f"({d['num_full_absorption']} fully absorbed of "
                f"{d['num_probe_true_positives']} words)"
                for d in details
            ],
            x_label="first letter",
            y_label="absorption",
        )
    return out


def per_layer_charts(rows: list[SourceEvals]) -> list[tuple[str, charts.Chart]]:
    """One chart per metric: the metric by layer, one line per source set."""
    out = []
    for metric in METRICS:
        series: dict[str, list[tuple[float, float]]] = {}
        for row in rows:
            value = metric.value(row.metrics)
            if value is not None:
                series.setdefault(row.source.set_name, []).append((row.source.layer, value))
        if series:
            chart = charts.line_chart(
                series, x_label="layer", y_label=metric.label, spec=metric.spec
            )
            out.append((metric.label, chart))
    return out


def tradeoff_charts(model_id: str, rows: list[SourceEvals]) -> list[tuple[str, charts.Chart]]:
    """SAE-Bench's plots: each source's L0 against a quality metric, by source set."""
    l0 = METRIC_BY_KEY["core||sparsity||l0"]
    out = []
    for key in (
        "core||model_performance_preservation||ce_loss_score",
        "core||reconstruction_quality||explained_variance",
        "absorption_first_letter||mean||mean_absorption_fraction_score",
    ):
        metric = METRIC_BY_KEY[key]
        points = [
            {
                "x": row.metrics[l0.key],
                "y": row.metrics[key],
                "group": row.source.set_name,
                "title": row.source.id,
                "href": f"/{model_id}/{row.source.id}",
            }
            for row in rows
            if l0.key in row.metrics and key in row.metrics
        ]
        if points:
            chart = charts.scatter(
                points,
                x_label="L0 (log scale)",
                y_label=metric.label,
                x_spec=".1f",
                y_spec=metric.spec,
                log_x=True,
            )
            out.append((f"L0 vs {metric.label}", chart))
    return out
