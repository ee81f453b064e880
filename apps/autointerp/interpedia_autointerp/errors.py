"""Errors of the autointerp service beyond `interpedia_core.errors`."""

from interpedia_core.errors import InterpediaError


class NotReady(InterpediaError):
    """The service is still loading its embedding model; retry in a few seconds."""

    status_code = 503


class NoLLM(InterpediaError):
    """This needs an LLM: set INTERPEDIA_AUTOINTERP_LLM_MODEL (and LLM_BASE_URL, LLM_API_KEY)."""

    status_code = 400


class NoDatabase(InterpediaError):
    """This autointerp server runs without a database (INTERPEDIA_AUTOINTERP_DATABASE_ENABLED)."""

    status_code = 503
