"""The console's 查岗 button in real headless Chromium: a district's control room answers through
the real gateway, and the console shows the answer with its response time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest
from playwright.sync_api import Browser

from firewatch.contract.settings import Settings
from firewatch.simulators.gb26875 import TransmissionDevice
from tests.test_api_server import ApiThread, client, tokens
from tests.test_console import ARTIFACTS, browser, open_console  # noqa: F401 - the browser fixture
from tests.test_gateway import CENTER, gateway_settings, running

pytestmark = pytest.mark.browser


class GatewayThread:
    """The gateway and one transmission device on an event loop of their own, beside the browser's."""

    def __init__(self, settings: Settings, address: str) -> None:
        self.settings = settings
        self.address = address
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with running(self.settings) as gw:
            device = TransmissionDevice(self.address, CENTER, duty_delay_s=1.2)
            await device.connect("127.0.0.1", gw.ports[0])
            await device.heartbeat()
            self.ready.set()
            while not self.stop.is_set():
                await asyncio.sleep(0.1)
            await device.close()

    def __enter__(self) -> Self:
        self.thread.start()
        assert self.ready.wait(20), "gateway thread did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)


@pytest.fixture
def api(settings: Settings) -> Iterator[ApiThread]:
    server = ApiThread(settings).start()
    yield server
    server.stop()


def test_the_duty_check_button_asks_the_districts_control_rooms_and_shows_the_answer(
        browser: Browser, api: ApiThread, settings: Settings) -> None:  # noqa: F811
    keys = tokens(api.settings)
    r = client(api, keys["admin"]).post("/api/v1/devices", json={
        "id": "P-DUTY", "kind": "panel", "district": "510109", "site": "Jinjiang Tower",
        "latitude": 30.65, "longitude": 104.07, "transmitter_address": "00000000f001"})
    assert r.status_code == 201, r.text
    with GatewayThread(gateway_settings(settings), "00000000f001"):
        page = open_console(browser, api, keys["operator"])
        page.select_option("#f-district", "510109")
        page.click("#duty")
        page.wait_for_selector("#drill:not([hidden]) table.grid")
        cell = page.locator("#drill table.grid tr:nth-child(2) td:nth-child(4)")
        cell.filter(has_text="已应答").wait_for(timeout=15_000)
        row = page.locator("#drill table.grid tr:nth-child(2)").inner_text()
        assert "P-DUTY" in row and "510109" in row and "秒" in row
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(Path(ARTIFACTS) / "duty-check.png"))
