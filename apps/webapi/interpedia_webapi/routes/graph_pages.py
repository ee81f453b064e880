"""The attribution-graph page, at Neuronpedia's address (`/{modelId}/graph?slug=...`).

The page is a template and one ES module (`static/graph.js`) that draws the graph on a
canvas from the graph JSON and does the rest through the API: generate (a job it
follows), feature details, subgraphs, steering. It loads nothing from elsewhere.
"""

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from interpedia_core.errors import NotFound
from interpedia_db import graph_store
from interpedia_db.models import Model
from interpedia_webapi import graphs
from interpedia_webapi.deps import SessionDep
from interpedia_webapi.routes.pages import TEMPLATES

router = APIRouter(include_in_schema=False)


@router.get("/{model_id}/graph", response_class=HTMLResponse)
async def graph_page(
    model_id: str,
    request: Request,
    session: SessionDep,
    slug: str = Query(default="", max_length=128),
    subgraph: str = Query(default="", max_length=64),
) -> HTMLResponse:
    model = await session.get(Model, model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")
    recent = await graph_store.list_graphs(session, model_id=model_id, limit=100)
    return TEMPLATES.TemplateResponse(
        request,
        "graph.html",
        {
            "model": model,
            "sets": await graphs.transcoder_sets(session, model_id),
            "trainings": await graphs.transcoder_trainings(session, model_id),
            "graphs": recent,
            "slug": slug,
            "subgraph": subgraph,
        },
    )
