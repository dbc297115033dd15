"""Answering a learnt route without FastAPI's per-request machinery, with the same bytes.

For every request FastAPI builds exit stacks, parses the query, the headers and the cookies
whatever the route declares, and walks the dependency tree generically: more than the handler
itself for most perpsim routes. Their shape is simple — an ``async`` endpoint whose
dependencies are ``async`` functions of the request (``State``, ``Signed``, ...), at most one
JSON body model, a response model inferred from the return annotation — and for that shape
:func:`direct_handler` does the same steps by hand, in FastAPI's order, with FastAPI's own
pieces: the route's body field validates the body, ``fastapi.routing.serialize_response``
validates and writes the answer (Pydantic's JSON, as FastAPI writes it), the answer is the
same ``Response``; an exception propagates to the same exception handlers (the app's
``ExceptionMiddleware``, just outside the router). Anything else — other parameter kinds,
dependency overrides, a custom response class, a route class with its own handler (unless it
offers ``wrap_route_handler``) — is served by FastAPI as always (``None``).

A body that does not parse or validate is handed to FastAPI's own handler untouched (nothing
has run yet), so every error answer stays FastAPI's.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute, serialize_response
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from perpsim.api.security import body_receive

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# FastAPI versions that write a response model's JSON with Pydantic (``dump_json``): the only
# serialisation reproduced here.
_DUMPS_JSON = "dump_json" in inspect.signature(serialize_response).parameters
_NO_BODY_STATUSES = range(100, 200)
_BODILESS = (204, 205, 304)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What serving the route takes: its dependencies, body field, endpoint and answer."""

    route: Any  # the APIRoute, or FastAPI's effective context of it (same attributes)
    dependencies: tuple[tuple[str, Callable[[Request], Awaitable[Any]]], ...]
    request_name: str | None
    body: Any  # the body's ModelField, or None
    endpoint: Callable[..., Awaitable[Any]]
    status_code: int | None


def _plain_dependency(dependant: Any) -> bool:
    """An ``async def f(request: Request)`` dependency with nothing below it."""
    return (inspect.iscoroutinefunction(dependant.call) and dependant.name is not None
            and dependant.request_param_name is not None and not dependant.dependencies
            and not _has_parameters(dependant, with_body=True) and not _special(dependant))


def _has_parameters(dependant: Any, *, with_body: bool) -> bool:
    return bool(dependant.path_params or dependant.query_params or dependant.header_params
                or dependant.cookie_params or (with_body and dependant.body_params))


def _special(dependant: Any) -> bool:
    """A parameter FastAPI fills from something other than the request."""
    return any(getattr(dependant, name, None) is not None for name in (
        "websocket_param_name", "http_connection_param_name", "response_param_name",
        "background_tasks_param_name", "security_scopes_param_name"))


def _body_field(dependant: Any) -> Any | bool | None:
    """The single JSON body model's field; None without a body; False for any other body."""
    if not dependant.body_params:
        return None
    if len(dependant.body_params) != 1:
        return False
    field = dependant.body_params[0]
    info = field.field_info
    model = info.annotation
    if (not isinstance(model, type) or not issubclass(model, BaseModel)
            or not isinstance(info, params.Body) or isinstance(info, params.Form)
            or getattr(info, "embed", False) or getattr(info, "media_type", "") !=
            "application/json"):
        return False
    return field


def _plan(route: APIRoute, effective: Any) -> _Plan | None:
    if not _DUMPS_JSON:
        return None
    like = effective if effective is not None else route
    dependant = getattr(like, "dependant", None)
    if dependant is None or not inspect.iscoroutinefunction(dependant.call):
        return None
    if (_has_parameters(dependant, with_body=False) or _special(dependant)
            or not all(_plain_dependency(d) for d in dependant.dependencies)):
        return None
    calls = [d.call for d in dependant.dependencies]
    if len(set(calls)) != len(calls):  # one call twice: FastAPI would run it once
        return None
    body = _body_field(dependant)
    if body is False:
        return None
    if (getattr(like, "response_field", None) is None
            or not isinstance(getattr(like, "response_class", None), DefaultPlaceholder)
            or getattr(like, "max_body_size", None) is not None
            or getattr(like, "is_json_stream", False) or getattr(like, "stream_item_field", None)
            is not None):
        return None
    status = like.status_code
    if status is not None and (status in _NO_BODY_STATUSES or status in _BODILESS):
        return None
    return _Plan(like, tuple((d.name, d.call) for d in dependant.dependencies),
                 dependant.request_param_name, body, dependant.call, status)


def _handler(plan: _Plan) -> Handler:
    """``request → Response`` as FastAPI's own handler for the route computes it."""
    like = plan.route

    async def handle(request: Request) -> Response:
        values: dict[str, Any] = {}
        for name, call in plan.dependencies:
            values[name] = await call(request)
        if plan.request_name is not None:
            values[plan.request_name] = request
        if plan.body is not None:
            assert isinstance(request, _BodyRequest)
            values[plan.body.name] = request.validated_body
        result = await plan.endpoint(**values)
        if isinstance(result, Response):
            return result
        content = await serialize_response(
            field=like.response_field, response_content=result,
            include=like.response_model_include, exclude=like.response_model_exclude,
            by_alias=like.response_model_by_alias,
            exclude_unset=like.response_model_exclude_unset,
            exclude_defaults=like.response_model_exclude_defaults,
            exclude_none=like.response_model_exclude_none, is_coroutine=True,
            dump_json=True)
        if plan.status_code:
            return Response(content=content, media_type="application/json",
                            status_code=plan.status_code)
        return Response(content=content, media_type="application/json")

    return handle


class _BodyRequest(Request):
    """A request whose JSON body was validated already (the handler's argument)."""

    validated_body: Any = None


def direct_handler(route: APIRoute, effective: Any, fallback: ASGIApp) -> ASGIApp | None:
    """An ASGI app answering ``route`` as FastAPI would (``effective``: FastAPI's context for
    it when it keeps one), handing to ``fallback`` what it does not do; None when the route's
    shape is not one it serves (module doc)."""
    plan = _plan(route, effective)
    if plan is None:
        return None
    wrap = getattr(type(route), "wrap_route_handler", None)
    if type(route).get_route_handler is not APIRoute.get_route_handler and wrap is None:
        return None  # a route class with its own handler, and no way to reuse it here
    handler = _handler(plan)
    if wrap is not None:
        handler = wrap(handler)
    body = plan.body

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if getattr(scope.get("app"), "dependency_overrides", True):  # overridden, or no app
            await fallback(scope, receive, send)
            return
        if body is None:
            request = Request(scope, receive, send)
        else:
            request = _BodyRequest(scope, receive, send)
            request.validated_body = await _valid_body(request, body)
            if request.validated_body is None:  # FastAPI's handler answers, with the body
                await fallback(scope, body_receive(await request.body(), receive), send)
                return
        response = await handler(request)
        await response(scope, receive, send)

    return app


async def _valid_body(request: Request, field: Any) -> Any | None:
    """The body validated against ``field`` when it is a JSON object sent as
    ``application/json`` that validates; else None (FastAPI's handler says why)."""
    raw = await request.body()
    if not raw or request.headers.get("content-type") != "application/json":
        return None
    try:
        decoded = await request.json()
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    value, errors = field.validate(decoded, {}, loc=("body",))
    return None if errors else value
