"""Server-rendered pages (Jinja2). Data comes from the same domain functions as the API."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.convertors import Convertor, register_url_convertor

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_db.models import Feature
from interpedia_webapi import (
    catalog,
    charts,
    collaboration,
    dashboards,
    evaluations,
    feature_lists,
    steering,
)
from interpedia_webapi.deps import SessionDep, UpstreamsDep
from interpedia_webapi.feature_lists import FeatureRef
from interpedia_webapi.routes import steer_runs
from interpedia_webapi.schemas import parse_index

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
PAGE_SIZE = 50

router = APIRouter(include_in_schema=False)


class ModelSegment(Convertor[str]):
    """A model id in a page URL: any segment but the app's own prefixes.

    `/{model_id}/{source_id}/{index}` would otherwise claim `/api/list/list` (a POST
    route) and answer a GET with the page's "no feature api/list/list" instead of 405.
    """

    regex = r"(?!(?:api|static)(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model_segment", ModelSegment())


def _shade(value: float, top: float) -> str:
    """Background colour of a token: transparent at 0, saturated at the example's max."""
    if top <= 0 or value <= 0:
        return "transparent"
    alpha = min(1.0, value / top)
    return f"rgba(249, 115, 22, {alpha:.3f})"


# zip: imported rows may carry token lists and value lists of different lengths.
TEMPLATES.env.globals.update(shade=_shade, zip=zip)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, session: SessionDep) -> HTMLResponse:
    models = await catalog.list_models(session)
    return TEMPLATES.TemplateResponse(request, "home.html", {"models": models})


async def _served(
    upstreams: UpstreamsDep, models: list[catalog.ModelSummary]
) -> list[catalog.ModelSummary]:
    """The models an inference service serves: the only ones a page may offer to run."""
    served = set(await upstreams.served([m.model.id for m in models]))
    return [m for m in models if m.model.id in served]


@router.get("/search", response_class=HTMLResponse)
async def search_page(
    request: Request, session: SessionDep, upstreams: UpstreamsDep, q: str = ""
) -> HTMLResponse:
    models = await catalog.list_models(session)
    return TEMPLATES.TemplateResponse(
        request,
        "search.html",
        {"models": models, "served": await _served(upstreams, models), "q": q[:1000]},
    )


@router.get("/steer", response_class=HTMLResponse)
async def steer_page(
    request: Request,
    session: SessionDep,
    upstreams: UpstreamsDep,
    model: str = "",
    source: str = "",
    index: str = "",
    strength: float = 10.0,
) -> HTMLResponse:
    """Steer from a feature's or vector's page (the query names it) or from scratch."""
    served = await _served(upstreams, await catalog.list_models(session))
    preset = None
    if model and source and index.isdigit():
        feature = await session.get(Feature, (model, source, int(index)))
        if feature is not None:
            preset = {
                "modelId": model,
                "layer": source,
                "index": index,
                "strength": strength or feature.default_steer_strength,
            }
    return _steer_page(request, served, model, preset, None)


@router.get("/steer/{run_id}", response_class=HTMLResponse)
async def saved_steer_page(
    run_id: str, request: Request, session: SessionDep, upstreams: UpstreamsDep
) -> HTMLResponse:
    """A saved run, shared by its link: its texts, and its request filled in to run again."""
    run = steer_runs.load_response(await steering.saved_run(session, run_id))
    served = await _served(upstreams, await catalog.list_models(session))
    return _steer_page(request, served, run.modelId, None, run.model_dump(mode="json"))


def _steer_page(
    request: Request,
    served: list[catalog.ModelSummary],
    model: str,
    preset: dict[str, Any] | None,
    saved: dict[str, Any] | None,
) -> HTMLResponse:
    """Only served models are offered; the chosen one is the asked one, else the first."""
    served_ids = [m.model.id for m in served]
    selected = model if model in served_ids else next(iter(served_ids), None)
    return TEMPLATES.TemplateResponse(
        request,
        "steer.html",
        {"served": served, "selected": selected, "preset": preset, "saved": saved},
    )


@router.get("/lens", response_class=HTMLResponse)
async def lens_page(
    request: Request, session: SessionDep, upstreams: UpstreamsDep, model: str = ""
) -> HTMLResponse:
    """The logit lens of a prompt or chat on a served model (the chosen one, else the first)."""
    served = [m.model.id for m in await _served(upstreams, await catalog.list_models(session))]
    selected = model if model in served else next(iter(served), None)
    return TEMPLATES.TemplateResponse(
        request, "lens.html", {"served": served, "selected": selected}
    )


@router.get("/lists", response_class=HTMLResponse)
async def lists_page(request: Request, session: SessionDep) -> HTMLResponse:
    lists = await feature_lists.recent_lists(session)
    return TEMPLATES.TemplateResponse(request, "lists.html", {"lists": lists})


@router.get("/vectors", response_class=HTMLResponse)
async def vectors_page(request: Request, session: SessionDep) -> HTMLResponse:
    """The caller's steering vectors (the page reads them with its key)."""
    models = await catalog.list_models(session)
    return TEMPLATES.TemplateResponse(request, "vectors.html", {"models": models})


@router.get("/upload", response_class=HTMLResponse)
async def upload_page(request: Request) -> HTMLResponse:
    """Upload forms for dashboards computed elsewhere (the page sends with its key)."""
    return TEMPLATES.TemplateResponse(request, "upload.html", {})


@router.get("/my", response_class=HTMLResponse)
async def my_page(request: Request) -> HTMLResponse:
    """The caller's lists, bookmarks, vectors, runs and explanations (read with its key)."""
    return TEMPLATES.TemplateResponse(request, "my.html", {})


@router.get("/lists/{list_id}", response_class=HTMLResponse)
async def list_page(list_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    feature_list = await feature_lists.get_list(session, list_id)
    items = await feature_lists.list_items(session, list_id)
    descriptions = await dashboards.first_descriptions(
        session, [(i.model_id, i.source_id, i.index) for i in items]
    )
    return TEMPLATES.TemplateResponse(
        request,
        "list.html",
        {
            "feature_list": feature_list,
            "items": items,
            "descriptions": descriptions,
            "comments": await collaboration.list_comments(session, list_id),
        },
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> HTMLResponse:
    """The page is public; every action on it calls admin API routes with the admin key."""
    roots = request.app.state.settings.import_roots
    return TEMPLATES.TemplateResponse(request, "admin.html", {"roots": roots})


@router.get("/{model_id}", response_class=HTMLResponse)
async def model_page(model_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    """Every source set of a model, its sources' evaluations side by side and by layer."""
    rows = await evaluations.model_evals(session, model_id)
    summary = next(m for m in await catalog.list_models(session) if m.model.id == model_id)
    counts = {s.id: s for s in summary.sources}
    return TEMPLATES.TemplateResponse(
        request,
        "model.html",
        {
            "m": summary,
            "rows": rows,
            "counts": counts,
            "metrics": evaluations.METRICS,
            "absorption": evaluations.METRIC_BY_KEY[
                "absorption_first_letter||mean||mean_absorption_fraction_score"
            ],
            "per_layer": evaluations.per_layer_charts(rows),
            "tradeoffs": evaluations.tradeoff_charts(model_id, rows),
        },
    )


@router.get("/{model_id:model_segment}/{source_id}", response_class=HTMLResponse)
async def source_page(
    model_id: str,
    source_id: str,
    request: Request,
    session: SessionDep,
    page: int = 0,
    sort: str = "index",
    order: str = "asc",
) -> HTMLResponse:
    """The feature map, jump-to and search, evaluations, and the sortable feature table."""
    found = await evaluations.source_evals(session, model_id, source_id)
    page = max(0, min(page, 1_000_000))
    rows = await catalog.feature_table(
        session,
        model_id,
        source_id,
        sort=sort,
        descending=order == "desc",
        offset=page * PAGE_SIZE,
        limit=PAGE_SIZE + 1,
    )
    return TEMPLATES.TemplateResponse(
        request,
        "source.html",
        {
            "source": found.source,
            "evals": found,
            "metrics": evaluations.METRICS,
            "charts": evaluations.source_charts(found),
            "rows": rows[:PAGE_SIZE],
            "has_more": len(rows) > PAGE_SIZE,
            "page": page,
            "sort": sort,
            "order": "desc" if order == "desc" else "asc",
            "sorts": catalog.SORTS,
        },
    )


@router.get("/{model_id:model_segment}/{source_id}/{index}", response_class=HTMLResponse)
async def feature_page(
    model_id: str, source_id: str, index: str, request: Request, session: SessionDep
) -> HTMLResponse:
    try:
        number = parse_index(index)
    except InvalidInput:  # a bad index in a URL is simply not found
        raise NotFound(f"no feature {model_id}/{source_id}/{index}") from None
    dashboard = await dashboards.get_dashboard(session, model_id, source_id, number)
    source = await catalog.get_source(session, model_id, source_id)
    similar_descriptions = await dashboards.first_descriptions(
        session, [(model_id, source_id, i) for i, _ in dashboard.similar]
    )
    return TEMPLATES.TemplateResponse(
        request,
        "feature.html",
        {
            "d": dashboard,
            "f": dashboard.feature,
            "source": source,
            "similar_descriptions": similar_descriptions,
            "comments": await collaboration.feature_comments(
                session, FeatureRef(model_id, source_id, number)
            ),
            "freq": charts.histogram(
                dashboard.feature.freq_hist_heights,
                dashboard.feature.freq_hist_values,
                x_label="activation",
                y_label="tokens",
            ),
            "logits": charts.histogram(
                dashboard.feature.logits_hist_heights,
                dashboard.feature.logits_hist_values,
                x_label="logit (decoder direction · unembedding)",
                y_label="vocabulary tokens",
            ),
        },
    )
