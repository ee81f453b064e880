"""Typed dependencies of the inference routes."""

from typing import Annotated

from fastapi import Depends, Request

from interpedia_core.errors import InterpediaError
from interpedia_inference.engine import Engine
from interpedia_inference.settings import InferenceSettings


class StillLoading(InterpediaError):
    """The model and SAEs are still loading; retry shortly."""

    status_code = 503


def get_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise StillLoading()
    return engine


def get_settings(request: Request) -> InferenceSettings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[InferenceSettings, Depends(get_settings)]
