"""keel.ext.fastapi: lifespan, dependencies, request context, problems and health on a real app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from dependency_injector import providers
from fastapi import Depends, FastAPI, Request
from sqlalchemy import text

from keel import AuthorizationError, Command, HandlerRegistry, MessageBus, SqlAlchemyUnitOfWork
from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.ext.fastapi import (
    CORRELATION_HEADER,
    PROBLEM_JSON,
    container_of,
    install_keel,
    keel_lifespan,
    message_bus,
    unit_of_work,
)
from keel.orm import keel_metadata
from keel.security import Principal, current_principal
from keel.service_layer.context import current_correlation_id


class Echo(Command):
    word: str


class EchoUnitOfWork(SqlAlchemyUnitOfWork):
    pass


registry = HandlerRegistry()


@registry.register
async def echo(cmd: Echo, uow: EchoUnitOfWork) -> str:
    async with uow:
        said = (await uow.session.execute(text("SELECT :w"), {"w": cmd.word})).scalar_one()
    principal = current_principal()
    return f"{said} by {principal.id if principal else 'anonymous'}"


class EchoContainer(KeelContainer[EchoUnitOfWork]):
    unit_of_work_class = providers.Object(EchoUnitOfWork)
    handlers = providers.Object(registry)


def echo_container(url: str) -> EchoContainer:
    container = EchoContainer()
    container.settings.override(providers.Object(KeelSettings(database={"url": url})))
    return container


async def by_header(request: Request) -> Principal | None:
    """A toy authenticator: `X-User: name` is that user; `X-User: banned` is refused."""
    user = request.headers.get("X-User")
    if user == "banned":
        raise AuthorizationError("this caller may not use the service")
    return Principal(id=user) if user else None


def build_app(container: EchoContainer, **options: Any) -> FastAPI:
    app = FastAPI()
    install_keel(app, container, **options)
    seen: list[object] = []  # the units of work themselves: ids of freed objects can repeat

    @app.post("/echo")
    async def post_echo(cmd: Echo, bus: Annotated[MessageBus, Depends(message_bus)]) -> dict[str, Any]:
        return {"said": await bus.handle(cmd), "correlation": current_correlation_id()}

    @app.get("/uow")
    async def fresh(uow: Annotated[EchoUnitOfWork, Depends(unit_of_work)]) -> dict[str, Any]:
        seen.append(uow)
        return {"type": type(uow).__name__, "distinct": len({id(u) for u in seen}) == len(seen)}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    container = echo_container(f"sqlite+aiosqlite:///{tmp_path / 'echo.db'}")
    async with running(container):
        async with container.engine().begin() as conn:
            await conn.run_sync(keel_metadata.create_all)  # the audit and exactly-once tables
        app = build_app(container, authenticator=by_header)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://echo.test") as http:
            yield http


async def test_the_bus_dependency_handles_commands_as_the_authenticated_principal(client: httpx.AsyncClient) -> None:
    """The route's bus is the container's; the handler sees the principal the authenticator found."""
    alice = await client.post("/echo", json={"word": "hi"}, headers={"X-User": "alice"})
    anonymous = await client.post("/echo", json={"word": "hi"})
    assert alice.json()["said"] == "hi by alice"
    assert anonymous.json()["said"] == "hi by anonymous"


async def test_a_refusing_authenticator_answers_a_problem_before_the_route(client: httpx.AsyncClient) -> None:
    """A keel error from the authenticator is a 403 problem+json, with the correlation id header."""
    refused = await client.post("/echo", json={"word": "hi"}, headers={"X-User": "banned"})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.json()["code"] == AuthorizationError.code
    assert refused.headers[CORRELATION_HEADER]


async def test_a_correlation_id_is_kept_when_safe_and_replaced_when_not(client: httpx.AsyncClient) -> None:
    """A safe X-Correlation-ID is used and echoed; a hostile one is replaced by a fresh id."""
    kept = await client.post("/echo", json={"word": "a"}, headers={CORRELATION_HEADER: "req-42"})
    hostile = await client.post("/echo", json={"word": "a"}, headers={CORRELATION_HEADER: "x\r\nSet-Cookie: a" * 3})
    fresh = await client.post("/echo", json={"word": "a"})
    assert (kept.json()["correlation"], kept.headers[CORRELATION_HEADER]) == ("req-42", "req-42")
    assert hostile.json()["correlation"] != "x"
    assert "Set-Cookie" not in hostile.headers[CORRELATION_HEADER]
    assert fresh.json()["correlation"] == fresh.headers[CORRELATION_HEADER]
    assert fresh.json()["correlation"] != kept.json()["correlation"]


async def test_each_request_gets_a_fresh_unit_of_work_of_the_applications_class(client: httpx.AsyncClient) -> None:
    """The unit-of-work dependency builds a new EchoUnitOfWork per request."""
    first = (await client.get("/uow")).json()
    second = (await client.get("/uow")).json()
    assert first == {"type": "EchoUnitOfWork", "distinct": True}
    assert second["distinct"] is True


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/nowhere", None, 404, "not_found"),
        ("DELETE", "/echo", None, 405, "method_not_allowed"),
        ("POST", "/echo", b"{not json", 422, "validation_error"),
        ("POST", "/echo", b'{"word": 5}', 422, "validation_error"),
        ("GET", "/boom", None, 500, "internal_error"),
    ],
)
async def test_every_error_is_problem_json(
    client: httpx.AsyncClient, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    """Framework errors and crashes are problem+json with a stable code, and show nothing internal."""
    response = await client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == code
    assert "secret internals" not in response.text


async def test_health_routes_report_live_and_ready(client: httpx.AsyncClient) -> None:
    """/health/live is 200; /health/ready checks the container's database (keel.health's report)."""
    assert (await client.get("/health/live")).json()["status"] == "live"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["database"]["status"] == "ok"


async def test_readiness_is_a_503_problem_when_the_database_is_unreachable() -> None:
    """A database on a closed port: not ready, 503 problem with Retry-After."""
    container = echo_container("postgresql+asyncpg://nobody@127.0.0.1:9/nothing")
    async with running(container):
        transport = httpx.ASGITransport(app=build_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="http://echo.test") as http:
            ready = await http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"]
    assert ready.json()["code"] == "not_ready"


async def test_the_lifespan_starts_and_stops_the_container(tmp_path: Path) -> None:
    """keel_lifespan attaches the container and builds the bus at start; resources stop at exit."""
    container = echo_container(f"sqlite+aiosqlite:///{tmp_path / 'life.db'}")
    app = FastAPI(lifespan=keel_lifespan(container))
    async with app.router.lifespan_context(app):
        request = Request({"type": "http", "app": app, "headers": []})
        assert container_of(request) is container
        engine = container.engine()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    assert engine.pool.checkedout() == 0


def test_an_app_without_a_container_says_how_to_attach_one() -> None:
    """container_of on a bare app names install_keel."""
    request = Request({"type": "http", "app": FastAPI(), "headers": []})
    with pytest.raises(RuntimeError, match="install_keel"):
        container_of(request)
