"""The console in real headless Chromium: a live city, the alarm queue, one-click handling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from firewatch.contract.settings import Settings
from firewatch.simulators.fleet import Fleet
from tests.conftest import wait_for
from tests.test_api import insert_alerts, write_lines
from tests.test_api_server import ApiThread, PipelineThread, client, tokens

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def city(settings: Settings, tmp_path: Path) -> Iterator[tuple[ApiThread, Fleet, dict[str, str]]]:
    """An api over a city of 600 devices imported from the simulator's registry CSV, most of them online."""
    fleet = Fleet.build(600, seed=7, districts=6)
    fleet.write_csv(tmp_path / "city.csv")
    api = ApiThread(settings).start()
    keys = tokens(api.settings)
    report = (
        client(api, keys["admin"])
        .post(
            "/api/v1/devices/import",
            content=(tmp_path / "city.csv").read_bytes(),
            headers={"content-type": "text/csv"},
        )
        .json()
    )
    assert (report["created"], report["rejected"]) == (600, [])
    wait_for(lambda: client(api, keys["viewer"]).get("/api/v1/health").json()["broker"])
    now = int(time.time() * 1000)
    msgs = [
        (
            f"fire/v1/{d.district}/{d.id}/status",
            f'{{"ts": {now}, "online": {"false" if k % 37 == 0 else "true"}}}',
            1,
            True,
        )
        for k, d in enumerate(fleet.devices)
    ]
    mqtt_publish.multiple(msgs, hostname="127.0.0.1", port=settings.mqtt.port)
    wait_for(
        lambda: (
            sum(
                r["online"] + r["offline"]
                for r in client(api, keys["viewer"]).get("/api/v1/stats/online").json()
            )
            == 600
        )
    )
    yield api, fleet, keys
    mqtt_publish.multiple(
        [(t, b"", 1, True) for t, *_ in msgs], hostname="127.0.0.1", port=settings.mqtt.port
    )
    api.stop()


def open_console(browser: Browser, api: ApiThread, token: str) -> Page:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(api.url + "/")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body[data-ready='1']")
    return page


def panel_alert(fleet: Fleet, k: int, **extra: object) -> dict[str, object]:
    panels = fleet.of_kind("panel")
    d = panels[k % len(panels)]
    return {
        "rule": "fire",
        "severity": "fire",
        "kind": "panel",
        "device_id": d.id,
        "district": d.district,
        "site": d.site,
        "zone": "3F east",
        "summary": f"fire alarm {d.site}",
    } | extra


def test_console_shows_a_live_city_and_its_queue(
    browser: Browser, city: tuple[ApiThread, Fleet, dict[str, str]]
) -> None:
    api, fleet, keys = city
    hydrants = fleet.of_kind("hydrant")
    insert_alerts(
        api.settings,
        panel_alert(fleet, 0, score=0.35, reasons=["single detector"]),
        panel_alert(
            fleet,
            1,
            score=0.92,
            probable=True,
            reasons=[
                "3 detectors in zone 3F east within 2 min",
                "cable temperature rising on the same site",
            ],
        ),
        *[
            {
                "rule": "pressure_low",
                "severity": "critical" if k < 3 else "warning",
                "kind": "hydrant",
                "device_id": h.id,
                "district": h.district,
                "site": h.site,
                "summary": "low water pressure",
                "metric": "pressure_mpa",
                "value": 0.09,
                "threshold": 0.10,
            }
            for k, h in enumerate(hydrants[:12])
        ],
    )
    page = open_console(browser, api, keys["operator"])
    first = page.locator("#queue li.alert").first
    expect(first).to_contain_text("3 detectors in zone 3F east")
    expect(page.locator("#queue li.alert")).to_have_count(14)
    expect(page.locator("#online-count")).to_have_text("583/600")
    page.select_option("#f-kind", "hydrant")
    expect(page.locator("#queue li.alert")).to_have_count(12)
    page.select_option("#f-kind", "")
    page.click("#stats")
    expect(page.locator("#drill h2")).to_have_text("统计")
    expect(page.locator("#drill table.grid").first).to_contain_text("510104")
    page.click("#drill-close")
    expect(page.locator("#queue-wrap h2")).to_contain_text("报警队列")
    page.click("#lang")
    expect(page.locator("#queue-wrap h2")).to_contain_text("Alarm queue")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(
        path=str(ARTIFACTS / "console.png")
    )  # English: CI machines often lack CJK fonts


def test_a_panel_fire_alarm_is_on_top_of_the_queue_within_2_s_of_the_publish(
    browser: Browser, city: tuple[ApiThread, Fleet, dict[str, str]]
) -> None:
    """The whole chain: panel -> broker -> alerting -> SQL + alert topic -> api stream -> console."""
    api, fleet, keys = city
    insert_alerts(
        api.settings,
        *[
            {
                "rule": "pressure_low",
                "severity": "critical",
                "kind": "hydrant",
                "device_id": h.id,
                "district": h.district,
            }
            for h in fleet.of_kind("hydrant")[:20]
        ],
    )
    pipeline = PipelineThread(api.settings).start()
    try:
        page = open_console(browser, api, keys["viewer"])
        expect(page.locator("#queue li.alert.sev-critical")).not_to_have_count(0)
        expect(page.locator("#link")).to_have_class("link live")
        panel = fleet.of_kind("panel")[2]
        body = orjson.dumps(
            {
                "ts": int(time.time() * 1000),
                "seq": 1,
                "kind": "panel",
                "event": "fire",
                "loop": 1,
                "point": 23,
                "zone": "3F east",
                "component": "smoke",
            }
        )
        start = time.monotonic()
        mqtt_publish.single(
            f"fire/v1/{panel.district}/{panel.id}/event",
            body,
            qos=1,
            hostname="127.0.0.1",
            port=api.settings.mqtt.port,
        )
        expect(page.locator("#queue li.alert").first).to_contain_text(panel.id, timeout=2000)
        assert time.monotonic() - start < 2.0
        expect(page.locator("#queue li.alert").first).to_have_class("alert sev-fire state-firing")
        expect(page.locator("#flash")).to_have_class("on")
    finally:
        pipeline.stop()


def test_acknowledging_in_the_console_changes_it_everywhere(
    browser: Browser, city: tuple[ApiThread, Fleet, dict[str, str]]
) -> None:
    api, fleet, keys = city
    (alert_id,) = insert_alerts(api.settings, panel_alert(fleet, 3))
    operator_page = open_console(browser, api, keys["operator"])
    watcher_page = open_console(browser, api, keys["viewer"])
    item = f"#queue li[data-id='{alert_id}']"
    expect(watcher_page.locator(item)).to_have_class("alert sev-fire state-firing")
    expect(watcher_page.locator(f"{item} button")).to_have_count(0)
    operator_page.click(f"{item} button[data-act=ack]")
    expect(watcher_page.locator(item)).to_have_class("alert sev-fire state-acknowledged")
    expect(watcher_page.locator(item)).to_contain_text("operator-tester")
    alert = client(api, keys["viewer"]).get(f"/api/v1/alerts/{alert_id}").json()["alert"]
    assert (alert["state"], alert["acknowledged_by"]) == ("acknowledged", "operator-tester")
    operator_page.click(f"{item} button[data-act=note]")
    operator_page.fill(f"{item} input.note", "control room: kitchen steam")
    operator_page.press(f"{item} input.note", "Enter")
    operator_page.click(f"{item} button[data-act=false]")
    expect(watcher_page.locator(item)).to_have_count(0)
    history = client(api, keys["viewer"]).get(f"/api/v1/alerts/{alert_id}").json()["history"]
    assert [(h["action"], h["detail"]) for h in history[1:]] == [
        ("acknowledge", {}),
        ("comment", {"text": "control room: kitchen steam"}),
        ("resolve", {"outcome": "false_alarm"}),
    ]


def test_drill_down_from_an_alert_to_its_device_chart_with_levels(
    browser: Browser, city: tuple[ApiThread, Fleet, dict[str, str]]
) -> None:
    api, fleet, keys = city
    hydrant = fleet.of_kind("hydrant")[0]
    now = int(time.time() * 1000)
    write_lines(
        api.settings,
        [
            f"hydrant,device_id={hydrant.id} pressure_mpa={0.3 - k * 0.01:.2f} {now - k * 600_000}"
            for k in range(25)
        ],
    )
    (alert_id,) = insert_alerts(
        api.settings,
        {
            "rule": "pressure_low",
            "severity": "critical",
            "kind": "hydrant",
            "device_id": hydrant.id,
            "district": hydrant.district,
            "site": hydrant.site,
            "metric": "pressure_mpa",
            "value": 0.06,
            "threshold": 0.10,
            "started_ms": now - 3_600_000,
            "last_seen_ms": now,
        },
    )
    page = open_console(browser, api, keys["viewer"])
    page.click(f"#queue li[data-id='{alert_id}'] .where")
    expect(page.locator("#drill h2")).to_contain_text("严重")
    expect(page.locator("#drill canvas.chart")).to_have_count(1)
    page.click(f"#drill a[data-device='{hydrant.id}']")
    expect(page.locator("#drill h2")).to_contain_text(hydrant.id)
    expect(page.locator("#drill canvas.chart")).to_have_count(1)
    page.click(f"#drill a[data-site='{hydrant.site}']")
    expect(page.locator("#drill h2")).to_contain_text(hydrant.site)
