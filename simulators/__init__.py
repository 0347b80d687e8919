"""Simulated city: a fleet of electrical, hydrant, panel and pump devices speaking the wire contract.

Public surface (stable; other parts import it):

    Fleet.build(devices, seed=1, districts=5, mix=None, intervals_s=None) -> Fleet
        Same arguments, same city. `fleet.devices` (Device: id, kind, district, site,
        address, latitude, longitude, report_interval_s, fw), `fleet.write_csv(path)`,
        `await fleet.register(store_url)` (contract.db Device rows).
    Scenario.load(path) / Scenario.from_dict(doc) -> Scenario
        `scenario.resolve(fleet, start_ms, end_ms) -> list[Incident]`; `write_truth(incidents, path)`.
        INCIDENTS names every incident type with its kind, severity and signature.
    generate(fleet, scenario=None, start_ms=None, end_ms=None, chaos=None, *, rate=0.0,
             status=True, incidents=None) -> Iterator[Message]
        Offline, no broker: messages in wire order. Message(topic, payload, ts_ms, kind,
        retain, invalid, records, duplicate), a NamedTuple whose first three fields are
        (topic, payload bytes, event-time ms); `Tally` counts a stream.
    Chaos(malformed, duplicates, out_of_order, late, skew, skew_s, batch, seed)
    await publish(settings, fleet, messages, Pace(start_ms, speed), qos=1, connections=None,
                  on_progress=None, stop=None, offline_at_end=True) -> Tally
        Over MQTT to settings.mqtt; live (speed 1) or accelerated (speed N, 0 = flat out);
        reconnects and resends unacknowledged QoS-1 messages if the broker goes away.
    parse_duration("2h") -> ms, parse_time("2h" | ISO, start_ms) -> ms
    gb26875.TransmissionDevice(address, center, variant, ...)
        A panel's user information transmission device over TCP (GB/T 26875.3), for the
        gateway's tests, its benchmark and `panels: gateway` evaluations; `event(doc)` sends
        a wire-contract panel event as the frame a device would.

`firewatch simulate` (simulators.command) wires these to the terminal.
"""

from firewatch.simulators.chaos import Chaos
from firewatch.simulators.fleet import Device, Fleet
from firewatch.simulators.publisher import Pace, publish
from firewatch.simulators.scenario import (
    INCIDENTS,
    Incident,
    Scenario,
    ScenarioError,
    parse_duration,
    parse_time,
    write_truth,
)
from firewatch.simulators.stream import Message, Tally, generate

__all__ = [
    "INCIDENTS",
    "Chaos",
    "Device",
    "Fleet",
    "Incident",
    "Message",
    "Pace",
    "Scenario",
    "ScenarioError",
    "Tally",
    "citymap",
    "command",
    "gb26875",
    "generate",
    "parse_duration",
    "parse_time",
    "publish",
    "write_truth",
]
