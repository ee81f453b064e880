"""Typed dependencies of the trainer's routes."""

from collections.abc import AsyncIterator
from typing import Annotated

import procrastinate
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_trainer.settings import TrainerSettings


def get_settings(request: Request) -> TrainerSettings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def get_job_app(request: Request) -> procrastinate.App:
    return request.app.state.job_app


SettingsDep = Annotated[TrainerSettings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
JobAppDep = Annotated[procrastinate.App, Depends(get_job_app)]
