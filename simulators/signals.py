"""What a healthy device reports at a given moment, vectorised over many readings at once.

A reading is a pure function of (seed, device, report number, event time): the
noise comes from a counter-based hash, not a stateful generator, so any time
range of any run reproduces the very same values, however it is cut into
chunks. Healthy values stay well inside DOMAIN.md's alarm thresholds, so every
alarm in simulated data comes from an injected incident.
"""

from __future__ import annotations

import numpy as np

from firewatch.contract.kinds import SPECS, Kind

LOCAL_UTC_OFFSET_H = 8
"""The city's clock (China Standard Time): load curves follow local hours."""

DECIMALS = {
    "residual_ma": 0, "arc_count": 0, "battery_pct": 0, "rssi_dbm": 0,
    "pressure_mpa": 3, "flow_lps": 1, "current_a": 1, "voltage_v": 1, "vibration_mm_s": 2,
    "tilt_deg": 1, "temp_c": 1,
    **{f"temp{i}_c": 1 for i in range(1, 5)},
    **{f"current_{p}_a": 1 for p in "abc"},
    **{f"voltage_{p}_v": 1 for p in "abc"},
}
BOOLEAN = {"cover_open", "water_flow"}

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each element."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hashes(seed: int, key: np.ndarray, k: np.ndarray, salt: int) -> np.ndarray:
    """One 64-bit hash per (seed, device key, report number, salt)."""
    with np.errstate(over="ignore"):
        x = key.astype(np.uint64) * _GOLDEN + np.uint64((seed * 1_000_003 + salt * 7919) % 2**64)
        x = _mix(x ^ (k.astype(np.uint64) * _M2))
        return _mix(x)


def uniform(seed: int, key: np.ndarray, k: np.ndarray, salt: int) -> np.ndarray:
    return (hashes(seed, key, k, salt) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def gauss(seed: int, key: np.ndarray, k: np.ndarray, salt: int) -> np.ndarray:
    """Approximately standard normal: the sum of the hash's four 16-bit quarters (Irwin-Hall)."""
    h = hashes(seed, key, k, salt)
    mask = np.uint64(0xFFFF)
    total = np.zeros(h.shape, dtype=np.float64)
    for shift in (0, 16, 32, 48):
        total += ((h >> np.uint64(shift)) & mask).astype(np.float64)
    return (total / 65536.0 - 2.0) * np.sqrt(3.0)


def local_hour(t_ms: np.ndarray) -> np.ndarray:
    return ((t_ms / 3_600_000.0) + LOCAL_UTC_OFFSET_H) % 24.0


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def building_load(hour: np.ndarray) -> np.ndarray:
    """0 at night, 1 at the busiest hour: offices by day, lighting and kitchens in the evening."""
    return np.clip(0.9 * _bump(hour, 11.0, 2.5) + 0.8 * _bump(hour, 15.5, 2.0) + 0.7 * _bump(hour, 20.0, 1.8), 0, 1)


def water_demand(hour: np.ndarray) -> np.ndarray:
    """Mains demand peaks in the morning and evening, when pressure sags."""
    return np.clip(_bump(hour, 7.5, 1.2) + 0.9 * _bump(hour, 19.5, 1.5), 0, 1)


def ground_temperature(t_ms: np.ndarray) -> np.ndarray:
    """A hydrant chamber's temperature: coldest mid-January (~5 °C), warmest mid-July."""
    day = t_ms / 86_400_000.0
    season = 16.0 - 10.0 * np.cos(2 * np.pi * (day - 15.0) / 365.2425)
    return season + 1.2 * np.sin(2 * np.pi * (local_hour(t_ms) - 9.0) / 24.0)


def telemetry(
    kind: Kind, p: dict[str, np.ndarray], key: np.ndarray, k: np.ndarray, t_ms: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """Healthy readings of one kind; `p` holds each row's device baseline."""
    n = lambda salt: gauss(seed, key, k, salt)
    hour = local_hour(t_ms)
    if kind is Kind.ELECTRICAL:
        load = p["load_night"] + (p["load_peak"] - p["load_night"]) * building_load(hour)
        out: dict[str, np.ndarray] = {}
        for i, ph in enumerate("abc"):
            share = load * p[f"weight_{ph}"] * (1 + 0.03 * n(10 + i))
            out[f"current_{ph}_a"] = p["rated_a"] * share
            out[f"voltage_{ph}_v"] = 220.0 + p[f"volt_{ph}"] - 4.0 * load + 0.8 * n(20 + i)
            out[f"temp{i + 1}_c"] = p["ambient_c"] + p["rise_c"] * share**2 + 0.3 * n(30 + i)
        out["temp4_c"] = p["ambient_c"] + 1.5 * load + 0.3 * n(33)
        out["residual_ma"] = np.maximum(p["residual_ma"] * (0.85 + 0.3 * load) + 3.0 * n(40), 0)
        out["arc_count"] = np.where(uniform(seed, key, k, 41) < 0.01, 1 + (uniform(seed, key, k, 42) * 3) // 1, 0)
        return out
    if kind is Kind.HYDRANT:
        return {
            "pressure_mpa": p["pressure_mpa"] - 0.04 * water_demand(hour) + 0.004 * n(50),
            "tilt_deg": np.maximum(p["tilt_deg"] + 0.05 * n(51), 0),
            "cover_open": np.zeros(len(t_ms)),
            "water_flow": np.zeros(len(t_ms)),
            "temp_c": ground_temperature(t_ms) + p["ground_c"] + 0.2 * n(52),
            "battery_pct": p["battery_pct"] + 0.0 * t_ms,
            "rssi_dbm": p["rssi_dbm"] + 2.0 * n(53),
        }
    if kind is Kind.PUMP:
        # The weekly automatic test run (自动巡检): ten minutes at the device's own day and hour.
        week_h = ((t_ms / 3_600_000.0) + LOCAL_UTC_OFFSET_H + 72) % 168  # epoch was a Thursday
        start_h = p["test_day"] * 24 + p["test_hour"]
        running = ((week_h - start_h) % 168) < (10 / 60)
        return {
            "pressure_mpa": p["pressure_mpa"] + np.where(running, 0.25, 0) + 0.004 * n(60),
            "flow_lps": np.where(running, p["flow_lps"] * (1 + 0.03 * n(61)), 0),
            "current_a": np.where(running, p["rated_a"] * (1 + 0.02 * n(62)), 0.3 + 0.05 * np.abs(n(63))),
            "voltage_v": 380.0 + 3.0 * n(64) - np.where(running, 6.0, 0),
            "temp_c": p["ambient_c"] + 2.0 * np.sin(2 * np.pi * (hour - 9) / 24) + np.where(running, 4.0, 0)
            + 0.3 * n(65),
            "vibration_mm_s": np.where(running, 2.5, 0.3) + 0.05 * np.abs(n(66)),
        }
    raise ValueError(f"{kind} sends no telemetry")


def finish(kind: Kind, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Round to what a device's firmware would send and clip into the contract's physical ranges."""
    spec = SPECS[kind.value]
    out = {}
    for name, metric in spec.metrics.items():
        v = values[name]
        if name in BOOLEAN:
            out[name] = v > 0.5
        else:
            out[name] = np.round(np.clip(v, metric.low, metric.high), DECIMALS.get(name, 2))
    return out
