"""Server-rendered pages (Jinja2). Data comes from the same domain functions as the API."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_db.models import Explanation, Feature
from interpedia_webapi import catalog, dashboards, feature_lists
from interpedia_webapi.deps import SessionDep, UpstreamsDep
from interpedia_webapi.schemas import parse_index

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
PAGE_SIZE = 50

router = APIRouter(include_in_schema=False)


def _shade(value: float, top: float) -> str:
    """Background colour of a token: transparent at 0, saturated at the example's max."""
    if top <= 0 or value <= 0:
        return "transparent"
    alpha = min(1.0, value / top)
    return f"rgba(249, 115, 22, {alpha:.3f})"


def _bars(
    heights: list[float], values: list[float], width: int = 320, height: int = 90
) -> dict[str, Any]:
    """Rectangles of a histogram as inline SVG (no plotting library in the browser)."""
    if not heights:
        return {"bars": [], "width": width, "height": height, "labels": []}
    top = max(heights) or 1
    step = width / len(heights)
    bars = [
        {
            "x": round(i * step, 2),
            "w": round(max(step - 1, 1), 2),
            "h": round(h / top * (height - 14), 2),
            "y": round(height - 14 - h / top * (height - 14), 2),
            "title": f"{values[i]:.3g}: {h:g}" if i < len(values) else f"{h:g}",
        }
        for i, h in enumerate(heights)
    ]
    labels = [f"{values[0]:.2g}", f"{values[-1]:.2g}"] if values else []
    return {"bars": bars, "width": width, "height": height, "labels": labels}


# zip: imported rows may carry token lists and value lists of different lengths.
TEMPLATES.env.globals.update(shade=_shade, bars=_bars, zip=zip)


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
    """Only served models are offered; the chosen one is the preset's, else the first served."""
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
    served_ids = [m.model.id for m in served]
    selected = model if model in served_ids else next(iter(served_ids), None)
    return TEMPLATES.TemplateResponse(
        request, "steer.html", {"served": served, "selected": selected, "preset": preset}
    )


@router.get("/lists", response_class=HTMLResponse)
async def lists_page(request: Request, session: SessionDep) -> HTMLResponse:
    lists = await feature_lists.recent_lists(session)
    return TEMPLATES.TemplateResponse(request, "lists.html", {"lists": lists})


@router.get("/lists/{list_id}", response_class=HTMLResponse)
async def list_page(list_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    feature_list = await feature_lists.get_list(session, list_id)
    items = await feature_lists.list_items(session, list_id)
    descriptions = await _descriptions(session, [(i.model_id, i.source_id, i.index) for i in items])
    return TEMPLATES.TemplateResponse(
        request,
        "list.html",
        {"feature_list": feature_list, "items": items, "descriptions": descriptions},
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> HTMLResponse:
    """The page is public; every action on it calls admin API routes with the admin key."""
    roots = request.app.state.settings.import_roots
    return TEMPLATES.TemplateResponse(request, "admin.html", {"roots": roots})


async def _descriptions(
    session: SessionDep, keys: list[tuple[str, str, int]]
) -> dict[tuple[str, str, int], str]:
    if not keys:
        return {}
    from sqlalchemy import tuple_

    rows = await session.execute(
        select(
            Explanation.model_id,
            Explanation.source_id,
            Explanation.index,
            func.min(Explanation.description),
        )
        .where(tuple_(Explanation.model_id, Explanation.source_id, Explanation.index).in_(keys))
        .group_by(Explanation.model_id, Explanation.source_id, Explanation.index)
    )
    return {(m, s, i): d for m, s, i, d in rows.all()}


@router.get("/{model_id}/{source_id}", response_class=HTMLResponse)
async def source_page(
    model_id: str, source_id: str, request: Request, session: SessionDep, page: int = 0
) -> HTMLResponse:
    source = await catalog.get_source(session, model_id, source_id)
    page = max(0, min(page, 1_000_000))
    rows = (
        await session.execute(
            select(Feature.index, Feature.frac_nonzero, Feature.max_act)
            .where(Feature.model_id == model_id, Feature.source_id == source_id)
            .order_by(Feature.index)
            .limit(PAGE_SIZE + 1)
            .offset(page * PAGE_SIZE)
        )
    ).all()
    descriptions = await _descriptions(session, [(model_id, source_id, r[0]) for r in rows])
    return TEMPLATES.TemplateResponse(
        request,
        "source.html",
        {
            "source": source,
            "rows": rows[:PAGE_SIZE],
            "has_more": len(rows) > PAGE_SIZE,
            "page": page,
            "descriptions": descriptions,
        },
    )


@router.get("/{model_id}/{source_id}/{index}", response_class=HTMLResponse)
async def feature_page(
    model_id: str, source_id: str, index: str, request: Request, session: SessionDep
) -> HTMLResponse:
    try:
        number = parse_index(index)
    except InvalidInput:  # a bad index in a URL is simply not found
        raise NotFound(f"no feature {model_id}/{source_id}/{index}") from None
    dashboard = await dashboards.get_dashboard(session, model_id, source_id, number)
    source = await catalog.get_source(session, model_id, source_id)
    similar_descriptions = await _descriptions(
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
            "freq": _bars(dashboard.feature.freq_hist_heights, dashboard.feature.freq_hist_values),
            "logits": _bars(
                dashboard.feature.logits_hist_heights, dashboard.feature.logits_hist_values
            ),
        },
    )
