"""A control plane that cannot be abused (issue 15, point 4): Host allow-list, control token,
paths confined to the data directory, cryptographic API secrets, the --host warning."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from safety_helpers import app_client, state_digest

from perpsim.cli import main
from perpsim.serving import security_config


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.1:8765", "[::1]:8765",
                                  "LOCALHOST:1"])
def test_loopback_host_headers_are_served(host: str) -> None:
    client, _ = app_client()
    assert client.get("/control/state", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "10.0.0.7"])
def test_other_host_headers_are_refused_dns_rebinding(host: str) -> None:
    client, state = app_client()
    before = state_digest(state)
    for method, path in (("GET", "/control/state"), ("POST", "/control/accounts"),
                         ("GET", "/dapi/v1/time"), ("GET", "/ui")):
        response = client.request(method, path, headers={"Host": host},
                                  json={"balances": {"BTC": "1"}})
        assert response.status_code == 403
        assert response.json()["error"] == "host_not_allowed"
        assert "--allow-host" in response.json()["message"]
    assert state_digest(state) == before


def test_allowed_hosts_extend_the_list() -> None:
    client, _ = app_client(allowed_hosts=("perpsim.lan",))
    assert client.get("/control/state", headers={"Host": "perpsim.lan:8765"}).status_code == 200
    assert client.get("/control/state", headers={"Host": "other.lan"}).status_code == 403


def test_the_control_token_guards_control_and_dashboard_only() -> None:
    client, state = app_client(control_token="s3cret-token")
    before = state_digest(state)
    refused = client.post("/control/accounts", json={"balances": {"BTC": "1"}})
    assert refused.status_code == 401
    assert "Authorization: Bearer" in refused.json()["message"]
    assert client.get("/control/state",
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/ui/api/snapshot").status_code == 401
    assert state_digest(state) == before
    ok = {"Authorization": "Bearer s3cret-token"}
    assert client.post("/control/accounts", json={"balances": {"BTC": "1"}},
                       headers=ok).status_code == 201
    assert client.get("/control/state", headers={"X-Perpsim-Token": "s3cret-token"}
                      ).status_code == 200
    assert client.get("/dapi/v1/time").status_code == 200  # the dialect signs for itself
    login = client.get("/ui?token=s3cret-token")
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert client.get("/ui/api/snapshot", headers={"Cookie": cookie.split(";")[0]}
                      ).status_code == 200
    assert client.get("/ui?token=nope").status_code == 401


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.jsonl", "sub/../../x.jsonl",
                                 "~/x.jsonl", "C:\\x.jsonl"])
def test_recording_paths_are_confined_to_the_data_dir(tmp_path: Path, bad: str) -> None:
    client, _ = app_client(tmp_path)
    response = client.post("/control/record", json={"path": bad})
    assert response.status_code == 400, response.text
    assert "data directory" in response.json()["message"]
    assert client.get("/control/record").json() == {"recording": False}


def test_a_relative_recording_path_lands_in_the_data_dir(tmp_path: Path) -> None:
    client, _ = app_client(tmp_path)
    assert client.post("/control/record", json={"path": "runs/r.jsonl"}).status_code == 200
    assert client.post("/control/record", json={"stop": True}).status_code == 200
    assert (tmp_path / "runs" / "r.jsonl").read_text().startswith('{"kind":"header"')


def test_a_symlink_out_of_the_data_dir_is_refused(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    (data / "link").symlink_to(outside)
    client, _ = app_client(data)
    response = client.post("/control/record", json={"path": "link/r.jsonl"})
    assert response.status_code == 400
    assert not (outside / "r.jsonl").exists()


def test_reset_paths_are_confined_and_reveal_nothing(tmp_path: Path) -> None:
    client, state = app_client(tmp_path)
    before = state_digest(state)
    existing, missing = str(Path(__file__).resolve()), str(tmp_path / "nope.csv")
    answers = [client.post("/control/reset", json={"scenario": {"path": p}}).json()
               for p in (existing, missing)]
    assert [a["error"] for a in answers] == ["invalid_input", "invalid_input"]
    assert all("is absolute" in a["message"] for a in answers)
    for body in ({"scenario": "../x.csv"}, {"profile": "/etc/x.json"},
                 {"profile": "../binance_coinm.json"}):
        assert client.post("/control/reset", json=body).status_code == 400
    assert state_digest(state) == before
    # bundled names and files inside the data directory still work
    assert client.post("/control/reset", json={"scenario": "calm.json"}).status_code == 200
    (tmp_path / "mine.csv").write_text("time,index\n1704067200000,60000\n1704067260000,60100\n")
    assert client.post("/control/reset", json={"scenario": {"path": "mine.csv"}}
                       ).status_code == 200
    assert client.post("/control/reset", json={"scenario": "mine.csv"}).status_code == 200


def test_two_fresh_servers_hand_out_different_secrets_but_the_same_ids() -> None:
    created = []
    for _ in range(2):
        client, _ = app_client()
        created.append(client.post("/control/accounts", json={"balances": {"BTC": "1"}}).json())
    assert created[0]["account_id"] == created[1]["account_id"] == "1"
    assert created[0]["api_secret"] != created[1]["api_secret"]
    assert created[0]["api_key"] != created[1]["api_key"]


def _serve_args(host: str, token: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(host=host, control_token=token, data_dir=None, allow_host=[])


def test_binding_beyond_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PERPSIM_CONTROL_TOKEN", raising=False)
    with pytest.raises(ValueError, match="--control-token"):
        security_config(_serve_args("0.0.0.0"))
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "--control-token" in capsys.readouterr().err
    monkeypatch.setenv("PERPSIM_CONTROL_TOKEN", "from-env")
    config = security_config(_serve_args("0.0.0.0"))
    assert config.control_token == "from-env"
    assert "0.0.0.0" in config.allowed_hosts
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err
    loopback = security_config(_serve_args("127.0.0.1", "t"))
    assert loopback.control_token == "t"
    assert capsys.readouterr().err == ""


def test_websockets_are_under_the_host_allow_list_too() -> None:
    import asyncio

    import websockets

    from perpsim.api.app import create_app
    from perpsim.api.server import serve_in_thread

    async def handshake(url: str, host: str) -> str:
        try:
            async with websockets.connect(url, additional_headers={"Host": host},
                                          open_timeout=10):
                return "open"
        except websockets.InvalidStatus as exc:
            return str(exc.response.status_code)

    with serve_in_thread(create_app()) as base:
        url = base.replace("http://", "ws://") + "/ws/btcusd_perp@markPrice"
        assert asyncio.run(handshake(url, "evil.example")) == "403"
        assert asyncio.run(handshake(url, "127.0.0.1")) == "open"


def test_bare_names_never_read_the_working_directory(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With --data-dir elsewhere, a name that is not bundled must not resolve from the cwd:
    the loaders try a bare name as a relative path before the bundled names."""
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    data.mkdir()
    (cwd / "secret_store").mkdir()
    (cwd / "secret_store" / "store.json").write_text("{}")
    (cwd / "myprofile").write_text("{}")
    (cwd / "calm.json").write_text('{"generator": "nonsense"}')
    monkeypatch.chdir(cwd)
    client, state = app_client(data)
    before = state_digest(state)
    for body in ({"scenario": "secret_store"}, {"scenario": "secret_store@2024-01-01.."},
                 {"profile": "myprofile"}):
        answer = client.post("/control/reset", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert "neither bundled nor in the data directory" in answer.json()["message"]
    assert state_digest(state) == before
    # the bundled calm.json wins over the cwd's, which the data directory does not hold
    assert client.post("/control/reset", json={"scenario": "calm.json"}).status_code == 200
    # an unknown name still gets the loader's did-you-mean
    unknown = client.post("/control/reset", json={"scenario": "calmm"}).json()
    assert "did you mean" in unknown["message"].lower()
