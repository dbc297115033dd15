"""A dialect is one folder plus one registry line: nothing outside ``api/<dialect>/`` imports
it (the registry names it as text), and a third dialect registered with one line gets its
routes mounted, its errors answered in its own shape, the control plane, OpenAPI and faults
working, without a line of the core changing."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from perpsim.api import dialects
from perpsim.api.app import create_app
from perpsim.api.state import ServerConfig, ServerState
from perpsim.sim.errors import InvalidInput

from api_helpers import AsgiClient

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("api", "sim", "strategy", "perpsim", "benchmarks", "fixtures")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("perpsim", *path.relative_to(ROOT).parent.parts))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def _sources() -> list[Path]:
    files: list[Path] = []
    for top in PRODUCT:
        folder = ROOT / top
        if folder.is_symlink():
            continue
        files += [p for p in folder.rglob("*.py") if ".venv" not in p.parts]
    return files


@pytest.mark.parametrize("dialect", sorted(dialects.DIALECTS))
def test_nothing_outside_a_dialects_folder_imports_it(dialect: str) -> None:
    package = f"perpsim.api.{dialect}"
    folder = ROOT / "api" / dialect
    assert folder.is_dir()
    intruders = sorted(
        str(path.relative_to(ROOT)) for path in _sources()
        if folder not in path.parents
        and any(name == package or name.startswith(package + ".") for name in _imports(path)))
    assert intruders == []
    # The registry names it as text, on one line.
    registry = (ROOT / "api" / "dialects.py").read_text(encoding="utf-8")
    assert [line for line in registry.splitlines() if f'"{package}.routes"' in line] == [
        f'    "{dialect}": "{package}.routes",']


def test_the_scan_sees_imports_when_there_are_some() -> None:
    binance = _imports(ROOT / "api" / "binance_coinm" / "routes.py")
    assert "perpsim.api.binance_coinm.errors" in binance
    assert "perpsim.api.errors" in _imports(ROOT / "api" / "app.py")
    assert len(_sources()) > 100


# ---- a third dialect: one module, one registry line ---------------------------------------------
class ThirdError(Exception):
    """An error class of the third dialect's own."""


def _third_dialect() -> types.ModuleType:
    router = APIRouter(prefix="/x3")

    @router.get("/hello")
    async def hello(request: Request) -> dict[str, object]:
        return {"ok": True, "now": request.app.state.perpsim.exchange.now_ms}

    @router.get("/refuse")
    async def refuse() -> None:
        raise InvalidInput("x3 refuses")

    @router.get("/own")
    async def own() -> None:
        raise ThirdError("its own")

    def error_answer(request: Request, exc: Exception) -> Response:
        return JSONResponse({"x3_error": type(exc).__name__, "text": str(exc)}, status_code=418)

    module = types.ModuleType("perpsim_third_dialect.routes")
    module.__dict__.update(ROUTERS=(router,), TITLE="Third", REST_PATH="/x3", WS_PATH="/x3/ws",
                           PATH_PREFIXES=("/x3/",), SIGNED_HEADERS=("x-third-key",),
                           HANDLED_ERRORS=(ThirdError,), error_answer=error_answer)
    return module


def test_a_third_dialect_needs_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "perpsim_third_dialect.routes", _third_dialect())
    monkeypatch.setitem(dialects.DIALECTS, "third", "perpsim_third_dialect.routes")
    assert dialects.describe("third") == ("Third", "/x3", "/x3/ws")
    client = AsgiClient(create_app(state=ServerState(ServerConfig(profile="bybit_inverse"))))
    assert client.get("/x3/hello").json()["ok"] is True
    for path, kind in (("/x3/refuse", "InvalidInput"), ("/x3/own", "ThirdError"),
                       ("/x3/missing", "HTTPException")):
        answer = client.get(path)
        assert (answer.status_code, answer.json()["x3_error"]) == (418, kind), path
    # The others keep their shapes; the control plane its own.
    assert client.get("/dapi/v1/nothing").json()["code"] == -5000
    assert client.get("/v5/nothing").json()["retCode"] == 10017
    assert client.get("/control/nothing").json()["error"] == "not_found"
    assert "/x3/hello" in client.get("/openapi.json").json()["paths"]
    assert "x-third-key" in dialects.signed_headers()
    # Faults apply to its paths (a dialect without fault_answer gets the neutral plain text).
    rule = {"kind": "http_5xx", "status": 502, "path": "/x3/*", "count": 1}
    assert client.post("/control/faults", json=rule).status_code < 300
    faulted = client.get("/x3/hello")
    assert (faulted.status_code, faulted.text) == (502, "Bad Gateway")
    assert client.get("/x3/hello").status_code == 200
