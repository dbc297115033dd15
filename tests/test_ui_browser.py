"""The dashboard in a real browser: headless Chromium (the Debian package) driven by Playwright.

The live session server (``market`` fixture) gets a 20x long that a price shock will liquidate
and a 10x short that survives it; the page loads /ui, advances time with its own button, shocks
the price with its own control until the long is liquidated, and shows it on the timeline.
Screenshots go to ``artifacts/`` (git-ignored): ``ui-before-liquidation.png`` and
``ui-liquidation.png``.

No skipping: ``make test`` installs Chromium (Debian's ``chromium``, when it runs as root) and
Playwright (the test extra); without them this test fails and says what to install.
``playwright install`` is never needed (and fails offline): Playwright drives the system
executable.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from perpsim.strategy.connect import connect

from conftest import Market

CHROMIUM = os.environ.get("PERPSIM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SYMBOL = "BTC/USD:BTC"
WAIT_MS = 10_000


def _chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is None:
        pytest.fail(f"Chromium not found at {CHROMIUM} nor on PATH: install the Debian package "
                    "(sudo apt-get install chromium; `make test` does it when run as root) or "
                    "set PERPSIM_CHROMIUM to a Chromium or Chrome binary")
    return found


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh headless Chromium profile (the system executable)."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install -e '.[test]' "
                    "(do not run `playwright install`: the system Chromium is used)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1500, "height": 1000})
        try:
            context.set_default_timeout(WAIT_MS)
            yield context.new_page()
        finally:
            context.close()


def _open(market: Market, side: str, contracts: int, leverage: int,
          balance: str) -> dict[str, str]:
    """A new account (control plane) holding a cross position opened through real ccxt."""
    creds = market.account({"BTC": balance}, label=f"{leverage}x {side}")
    client = connect(market.base_url, creds["api_key"], creds["api_secret"])
    client.set_leverage(leverage, SYMBOL)
    client.create_order(SYMBOL, "market", side, contracts)
    return creds


def test_dashboard_shows_a_liquidation_caused_by_its_price_shock(market: Market,
                                                                   page: Any) -> None:
    victim = _open(market, "buy", 100, 20, "0.01")["account_id"]
    survivor = _open(market, "sell", 100, 10, "0.02")["account_id"]
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{market.base_url}/ui")
    page.wait_for_selector("#ws-status.live")
    row = page.locator(f'#positions-body tr[data-account="{victim}"]')
    row.wait_for()
    assert row.locator("td").nth(2).inner_text() == "100"
    liquidation_cell = row.locator("td.liq").inner_text()
    assert liquidation_cell not in ("", "–")
    page.wait_for_function("document.querySelectorAll('#chart .shapelayer path').length >= 6")
    _assert_a_readable_first_screen(page)

    # Advance time with the dashboard's button.
    assert page.inner_text("#sim-time") == "2024-01-01 00:00:00Z"
    page.click("#advance-1h")
    page.wait_for_function(
        "document.getElementById('sim-time').textContent === '2024-01-01 01:00:00Z'")
    assert market.state.exchange.now_ms == 1_704_067_200_000 + 3_600_000

    # Shock the price down 1% at a time with the dashboard's control until the long goes.
    liquidated = page.locator('#timeline li.ev-liquidation[data-type="liquidation.takeover"]')
    price = Decimal(60000)
    for step in range(12):
        if step == 5:
            page.screenshot(path=str(_artifact("ui-before-liquidation.png")), full_page=True)
        price = (price * Decimal("0.99")).quantize(Decimal("0.1"))
        page.fill("#shock-price", str(price))
        with page.expect_response(lambda r: r.url.endswith("/control/prices")) as answer:
            page.click("#shock-apply")
        assert answer.value.ok
        shown = f"{price:,.2f}"  # the page's price format
        page.wait_for_function(
            f"document.getElementById('price-now').textContent.includes('{shown}')")
        # the survivor's row is re-read from the snapshot: its mark follows the shock
        page.wait_for_function(
            f"""document.querySelector('#positions-body tr[data-account="{survivor}"] td.mark')"""
            f""".textContent === '{shown}'""")
        if liquidated.count():
            break
    else:
        raise AssertionError(f"no liquidation on the timeline down to {price}")
    liquidated.first.wait_for()
    assert f"#{victim}" in liquidated.first.inner_text()
    assert Decimal(liquidation_cell.replace(",", "")) > price  # it went where the page said
    page.wait_for_selector(f'#positions-body tr[data-account="{victim}"] td.flat')
    page.wait_for_selector(f'#positions-body tr[data-account="{survivor}"][data-symbol]')
    page.wait_for_function("document.querySelectorAll('#chart .shapelayer path').length >= 3")
    page.screenshot(path=str(_artifact("ui-liquidation.png")), full_page=True)

    assert market.state.exchange.position(victim, "BTCUSD_PERP").qty_contracts == 0

    # The funding chart's first bar, on an axis of hours and minutes.
    page.click("#advance-funding")
    page.wait_for_selector("#funding-chart .xtick text")
    page.wait_for_function("document.querySelectorAll('#funding-chart .point').length >= 1")
    ticks = _svg_texts(page, "#funding-chart .xtick text")
    assert ticks, "the funding chart has no time axis"
    assert all(re.search(r"\d\d:\d\d$", t) and not re.search(r"\d\.\d", t) for t in ticks), ticks
    page.screenshot(path=str(_artifact("ui-funding.png")), full_page=True)
    assert not errors, errors
    outside = [url for url in requests if not url.startswith(market.base_url)]
    assert not outside, f"the page went outside the server: {outside}"


def _assert_a_readable_first_screen(page: Any) -> None:
    """A fresh market: hours of time and a fraction of a percent of price on the axes (not the
    millisecond and the dollar plotly picks around a single point), readable time ticks, the
    three prices each drawn differently, and a unit on every numeric column."""
    layout = page.evaluate("(() => { const l = document.getElementById('chart').layout;"
                           " return {x: l.xaxis.range, y: l.yaxis.range}; })()")
    x0, x1 = (_epoch_ms(v) for v in layout["x"])
    assert x1 - x0 >= 2 * 3_600_000, layout
    y0, y1 = layout["y"]
    assert y1 - y0 >= 0.004 * 60_000, layout
    ticks = _svg_texts(page, "#chart .xtick text")
    assert ticks, "the price chart has no time axis"
    assert not any(re.search(r"\d\.\d", t) for t in ticks), ticks  # no fractions of a second
    styles = page.evaluate("document.getElementById('chart').data.slice(0, 3)"
                           ".map(t => [t.name, t.line.dash, t.line.width, t.marker.symbol])")
    assert [s[0] for s in styles] == ["index", "last", "mark"]
    assert len({(s[1], s[2]) for s in styles}) == 3, styles  # each line drawn its own way
    assert len({s[3] for s in styles}) == 3, styles
    headers = page.locator("#positions thead th").all_inner_texts()
    unitless = [h for h in headers if "(" not in h]
    assert unitless == ["account", "symbol", "margin mode"], headers


def _svg_texts(page: Any, selector: str) -> list[str]:
    """The text of plotly's SVG labels (SVG elements have no innerText)."""
    texts: list[str] = page.evaluate(
        "s => Array.from(document.querySelectorAll(s)).map(t => t.textContent)", selector)
    return texts


def _epoch_ms(value: Any) -> float:
    """A plotly date-axis bound (epoch ms, or a "YYYY-MM-DD HH:MM:SS.fff" string in UTC)."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC).timestamp() * 1000


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
