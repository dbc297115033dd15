"""``/control/faults``: install, list and remove fault rules (the model: api/faults.py).

``POST /control/faults`` takes one rule or a list (all or nothing) → 201 ``{"faults": [...]}``
with the ids given; ``GET`` lists the rules with their counters (``seen``, ``fired``; rate
limits also ``used`` and ``bans``) and the WebSocket connections opened per account;
``DELETE /control/faults`` removes every rule, ``DELETE /control/faults/{id}`` one.
Rules survive ``/control/reset`` (a test installs them, then its bot resets the market); the
pytest plugin clears them between tests.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from pydantic import ValidationError

from perpsim.api.faults import FaultSpec
from perpsim.sim.errors import InvalidInput

router = APIRouter(prefix="/control", tags=["control"])


def _registry(request: Request) -> Any:
    return request.app.state.perpsim_harness.faults


def parse_specs(body: Any) -> list[FaultSpec]:
    """One rule or a list of rules; InvalidInput names the rule and the field that is wrong."""
    items = body if isinstance(body, list) else [body]
    specs = []
    for number, item in enumerate(items):
        try:
            specs.append(FaultSpec.model_validate(item))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem.get("loc", ()))
            message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
            prefix = f"fault {number}" if isinstance(body, list) else "fault"
            raise InvalidInput(f"{prefix}: {where + ': ' if where else ''}{message}") from None
    return specs


_SPEC_SCHEMA = FaultSpec.model_json_schema()
_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "oneOf": [_SPEC_SCHEMA, {"type": "array", "items": _SPEC_SCHEMA}]}}}}}


@router.post("/faults", status_code=201, openapi_extra=_BODY_DOC)
async def add_faults(request: Request, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Install one fault rule (api/faults.py FaultSpec) or a list of them (none if any is
    refused)."""
    registry = _registry(request)
    specs = parse_specs(body)
    ids = [s.id for s in specs if s.id is not None]
    taken = {r.id for r in registry.rules}
    clash = sorted({i for i in ids if ids.count(i) > 1 or i in taken})
    if clash:
        raise InvalidInput(f"fault id {clash[0]!r} is already installed (or given twice)")
    rules = [registry.add(spec) for spec in specs]
    registry.bind(request.app.state.perpsim.exchange)
    return {"faults": [rule.describe() for rule in rules]}


@router.get("/faults")
async def list_faults(request: Request) -> dict[str, Any]:
    """The installed rules with their counters."""
    described: dict[str, Any] = _registry(request).describe()
    return described


@router.delete("/faults")
async def clear_faults(request: Request) -> dict[str, int]:
    """Remove every rule."""
    return {"removed": _registry(request).clear()}


@router.delete("/faults/{fault_id}")
async def remove_fault(fault_id: str, request: Request) -> dict[str, int]:
    """Remove one rule (404 if no rule has that id)."""
    if not _registry(request).remove(fault_id):
        raise HTTPException(404, f"no fault {fault_id!r} is installed")
    return {"removed": 1}
