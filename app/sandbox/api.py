"""What every sandbox endpoint shares: the typed API error and reading a JSON body strictly."""

from __future__ import annotations

from typing import Any

from flask import Request

from app.errors import CsosError


class SandboxApiError(CsosError):
    """An answer other than success: ``status`` is the HTTP status, ``code`` goes in ``{"error": code}``."""

    code = "bad_request"

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or a 400/415 saying what is wrong with it."""
    if not request.is_json:
        raise SandboxApiError(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json.")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise SandboxApiError(400, "invalid_json", "The body is not a JSON object.")
    return data


def text_field(data: dict[str, Any], name: str, *, required: bool = True, max_length: int = 200) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SandboxApiError(400, "missing_field", f"The field '{name}' is required.", field=name)
        return None
    if not isinstance(value, str):
        raise SandboxApiError(400, "invalid_field", f"The field '{name}' must be text.", field=name)
    value = value.strip()
    if len(value) > max_length:
        raise SandboxApiError(400, "invalid_field", f"The field '{name}' is longer than {max_length} characters.",
                              field=name)
    return value


def int_field(data: dict[str, Any], name: str, *, minimum: int = 0, maximum: int = 10**9,
              default: int | None = None) -> int:
    value = data.get(name, default)
    if value is None:
        raise SandboxApiError(400, "missing_field", f"The field '{name}' is required.", field=name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise SandboxApiError(400, "invalid_field", f"The field '{name}' must be a whole number from {minimum} to "
                                                    f"{maximum}.", field=name)
    return value
