"""Typed dependencies of the graph service's routes."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import procrastinate
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import UpstreamError
from interpedia_graph.replacement import ReplacementModels
from interpedia_graph.settings import GraphSettings


def get_settings(request: Request) -> GraphSettings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def get_job_app(request: Request) -> procrastinate.App:
    return request.app.state.job_app


def get_tokenizer(request: Request) -> Any:
    tokenizer = getattr(request.app.state, "tokenizer", None)
    if tokenizer is None:
        raise UpstreamError("the graph service is still loading its tokenizer; retry shortly")
    return tokenizer


class ModelRunner:
    """Runs one model call at a time in a thread (the model is not safe to share)."""

    def __init__(self, request: Request) -> None:
        self._state = request.app.state

    @property
    def busy(self) -> bool:
        return self._state.model_lock.locked()

    async def run(self, model_id: str, folder: Path, work: Any, *args: Any, **kwargs: Any) -> Any:
        models: ReplacementModels = self._state.models
        async with self._state.model_lock:
            model = await asyncio.to_thread(models.get, model_id, folder)
            return await asyncio.to_thread(work, model, *args, **kwargs)


SettingsDep = Annotated[GraphSettings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
JobAppDep = Annotated[procrastinate.App, Depends(get_job_app)]
TokenizerDep = Annotated[Any, Depends(get_tokenizer)]
RunnerDep = Annotated[ModelRunner, Depends(ModelRunner)]
