"""The console's map of the city in real headless Chromium: districts by name, boundaries and roads,
a filter that zooms, devices without coordinates or registration at their district, and
20,000 devices that stay readable."""

from __future__ import annotations

import time

import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import Browser, expect

from firewatch.contract.settings import Settings
from firewatch.simulators.citymap import (
    DEMO_DISTRICTS,
    DISTRICTS_FILE,
    LAYER_FILE,
    layer_text,
    registry_csv,
)
from firewatch.simulators.fleet import districts_of_city
from tests.conftest import wait_for
from tests.test_api import insert_alerts
from tests.test_api_server import client
from tests.test_console import ARTIFACTS, browser, city, open_console, panel_alert
from tests.test_console_shift import CityFixture

__all__ = ["browser", "city"]  # fixtures used by name


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with the simulated city's shipped map layer."""
    return settings.model_copy(update={"api": settings.api.model_copy(update={"map_layer": LAYER_FILE})})


def test_the_shipped_demo_city_files_are_what_the_generator_makes() -> None:
    city = districts_of_city(DEMO_DISTRICTS)
    assert LAYER_FILE.read_text(encoding="utf-8") == layer_text(city)
    assert DISTRICTS_FILE.read_text(encoding="utf-8") == registry_csv(city)


def test_the_map_shows_the_city_by_name_and_zooms_to_a_district(browser: Browser, city: CityFixture) -> None:
    api, fleet, keys = city
    admin = client(api, keys["admin"])
    r = admin.put("/api/v1/districts", content=DISTRICTS_FILE.read_bytes(), headers={"content-type": "text/csv"})
    assert r.status_code == 200 and len(r.json()) == DEMO_DISTRICTS
    bad = admin.put("/api/v1/districts", content=b"code,name\n510104,\n", headers={"content-type": "text/csv"})
    assert bad.status_code == 422 and "line 2" in bad.json()["message"]
    # registered without coordinates, and reporting without being registered at all
    assert admin.post("/api/v1/devices", json={"id": "HY-NOCOORD", "kind": "hydrant", "district": "510105"}).status_code == 201
    now = int(time.time() * 1000)
    mqtt_publish.single("fire/v1/510106/FP-GHOST/status", f'{{"ts": {now}, "online": true}}', qos=1,
                        hostname="127.0.0.1", port=api.settings.mqtt.port)
    wait_for(lambda: "FP-GHOST" in admin.get("/api/v1/console/snapshot").json()["devices"]["id"])
    panel = next(p for p in fleet.of_kind("panel") if p.district == "510104")
    insert_alerts(api.settings, panel_alert(fleet, 0, device_id=panel.id, district="510104", site=panel.site))

    page = open_console(browser, api, keys["operator"])
    page.set_viewport_size({"width": 1920, "height": 1080})
    expect(page.locator("#queue li.alert").first.locator(".where")).to_contain_text("锦江区")
    expect(page.locator("#f-district option", has_text="青羊区")).to_have_count(1)
    the_map = "document.querySelector('#map').cityMap"
    assert page.evaluate(f"{the_map}.polygons.length") == DEMO_DISTRICTS
    assert page.evaluate(f"{the_map}.roads.length") >= 4
    for device_id in ("HY-NOCOORD", "FP-GHOST"):
        assert page.evaluate(f"(() => {{ const m = {the_map}, i = m.index.get('{device_id}'); return [m.placed[i], m.approx[i]]; }})()") == [1, 1]
    whole = page.evaluate(f"{the_map}.fit() || {the_map}.view.scale")  # at this screen's size
    page.select_option("#f-district", "510106")
    wait_for(lambda: page.evaluate(f"{the_map}.view.scale") > 1.5 * whole)
    zoomed = page.evaluate(f"{the_map}.view.scale")
    # the unregistered device is found where its district is, and says what it is
    x, y = page.evaluate(f"(() => {{ const m = {the_map}, r = m.canvas.getBoundingClientRect(); const [x, y] = m._screen(m.index.get('FP-GHOST')); return [x + r.left, y + r.top]; }})()")
    page.mouse.move(x, y)
    expect(page.locator("#tip")).to_contain_text("FP-GHOST · 未登记设备 · 金牛区")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-district-zh.png"))
    page.select_option("#f-district", "")
    wait_for(lambda: page.evaluate(f"{the_map}.view.scale") < zoomed / 1.5)  # the whole city again
    page.screenshot(path=str(ARTIFACTS / "console-zh.png"))
    page.click("#stats")
    expect(page.locator("#drill table.grid").first).to_contain_text("锦江区")


def test_twenty_thousand_devices_are_drawn_as_counted_cells_with_alerts_on_their_own(
    browser: Browser, city: CityFixture
) -> None:
    """The console's own map module in the console page, fed a 20,000-device city."""
    api, _, keys = city
    page = open_console(browser, api, keys["viewer"])
    page.set_viewport_size({"width": 1920, "height": 1080})
    result = page.evaluate(
        """async () => {
          const { CityMap } = await import('/static/map.js');
          const canvas = document.querySelector('#map');
          const old = canvas.cityMap;
          old.setDevices({id: [], kind: [], district: [], site: [], latitude: [], longitude: [], online: []});
          const n = 20000, cols = {id: [], kind: [], district: [], site: [], latitude: [], longitude: [], online: []};
          for (let i = 0; i < n; i++) {
            cols.id.push('D' + i); cols.kind.push('hydrant'); cols.district.push('510104'); cols.site.push('');
            const u = (k) => { const x = Math.sin(i * 12.9898 + k * 78.233) * 43758.5453; return x - Math.floor(x); };
            cols.latitude.push(30.66 + 0.06 * (u(1) + u(2) + u(3) - 1.5)); cols.longitude.push(104.06 + 0.08 * (u(4) + u(5) + u(6) - 1.5));
            cols.online.push(i % 10 !== 0);
          }
          old.setDevices(cols);
          old.setSeverity('D123', 'fire');
          const t0 = performance.now();
          for (let k = 0; k < 5; k++) old.draw();
          const ms = (performance.now() - t0) / 5;
          return { ms, clustered: old.clustered };
        }"""
    )
    assert result["clustered"] is True, result
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-20000-devices.png"))
    the_map = "document.querySelector('#map').cityMap"
    close_up = page.evaluate(f"(() => {{ const m = {the_map}; m.view.scale *= 64; m.draw(); return m.clustered; }})()")
    assert close_up is False  # a few streets: every device on its own again


def test_the_district_registry_parser_takes_any_text_without_crashing() -> None:
    """Hostile CSV (stray carriage returns, NULs, quotes) is refused with a reason, never a crash or a 500."""
    from hypothesis import given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    from firewatch.contract.districts import RegistryError, parse_csv

    @hsettings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200).map(lambda t: "code,name\n" + t) | st.text(max_size=60))
    def check(text: str) -> None:
        try:
            rows = parse_csv(text)
        except RegistryError as exc:
            assert str(exc)
        else:
            assert all(r.code and r.name for r in rows)

    check()
