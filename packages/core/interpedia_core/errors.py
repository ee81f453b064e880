"""Errors that domain code raises and services turn into HTTP answers.

Domain code raises a subclass with a message the user can act on; each
service registers `interpedia_core.service.install_error_handlers`, which maps
the class to its status code and returns `{"detail": message}`. Anything else
is an unexpected error: logged with its traceback, answered with a bare 500.
"""


class InterpediaError(Exception):
    """Something went wrong in Interpedia."""

    status_code = 500

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(InterpediaError):
    """The request is not valid."""

    status_code = 400


class Unprocessable(InterpediaError):
    """The request is well-formed but its values are out of range."""

    status_code = 422


class Unauthorized(InterpediaError):
    """A valid key is required."""

    status_code = 401


class Forbidden(InterpediaError):
    """This key may not do that."""

    status_code = 403


class NotFound(InterpediaError):
    """Not found."""

    status_code = 404


class Conflict(InterpediaError):
    """That conflicts with what is already stored."""

    status_code = 409


class RateLimited(InterpediaError):
    """Too many requests; slow down."""

    status_code = 429


class UpstreamError(InterpediaError):
    """A service this one depends on failed or answered nonsense."""

    status_code = 502


class ConfigurationError(InterpediaError):
    """The configuration cannot work; the message says what to change."""
