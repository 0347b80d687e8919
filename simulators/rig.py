"""A pump test rig from physics, with labelled valve and cavitation faults: recordings to judge learned detection.

The shipped scenarios come from our own simulator and the detectors were tuned
to them; a held-out rig recording is judged differently (per-point F1 and the
false-alarm rate, with a training window `--learn` as a user would give). This
module writes such recordings from the physics of a small centrifugal pump, so
learned detection can be measured over many seeds and fault sizes instead of on
one file:

- the pump runs at a constant speed; its head falls with the flow (H = H0 − aQ²)
  and the system it feeds asks H = Hs + kQ², k set by a valve the operator moves
  slowly (demand), so flow and pressure move against each other along the curve;
- shaft power follows the flow (P = ρgQH/η, η peaking at the best efficiency
  point), motor current is P / (V · pf · η_motor): current follows the pump curve
  and the supply voltage, which wanders around its 230 V;
- the motor temperature lags its losses (first order, minutes);
- vibration is low at the best efficiency point and rises off it;
- a *valve* fault closes a valve over tens of seconds (k × 2..6): flow down,
  pressure up, current down with the power;
- *cavitation* (a suction restriction, size 0.1..0.3) cuts head and flow, makes
  pressure and flow ragged and raises vibration;
- every sensor adds its noise.

A recording is ~1,000–2,000 rows at 1 Hz: a fault-free training part, then
faults with fault-free spells between them. `write(path, seed)` writes one CSV
(time, the pump kind's metrics, `anomaly` 1/0) and `NAMEPLATE` is the rig's
rated values for `[alerting.pump.nameplate]`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAMEPLATE = {"voltage_v": 230, "pressure_mpa": 0.15, "temp_c": 70, "current_a": 10}
"""The rig's rated values: a 230 V motor of 10 A holding about 0.15 MPa, rated for 70 °C."""
T0_S = 1_790_000_000
RHO_G = 9.81e3
"""ρg of water, N/m³: head in m times this is pressure in Pa."""
H0_M, A_M_PER_LPS2 = 22.0, 0.55
"""Shut-off head and the curve's fall: H = H0 − aQ² (Q in L/s)."""
HS_M = 6.0
"""Static head of the rig's loop."""
BEP_LPS = 4.0
NOISE = {"pressure_mpa": 0.0015, "flow_lps": 0.04, "current_a": 0.08, "voltage_v": 0.6, "temp_c": 0.08,
         "vibration_mm_s": 0.06}
COLUMNS = ("pressure_mpa", "flow_lps", "current_a", "voltage_v", "temp_c", "vibration_mm_s")
FAULTS = ("valve", "cavitation")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    start: int
    rows: int
    size: float
    """valve: how many times the valve's resistance grows (2..6); cavitation: the share of head lost (0.1..0.3)."""


def wander(rng: np.random.Generator, rows: int, tau: float) -> np.ndarray:
    """A slow random wander of unit spread and time constant `tau` rows (Ornstein–Uhlenbeck): a demand or a
    supply moves around its normal, and a training part of a few times `tau` has seen its range."""
    a = np.exp(-1 / tau)
    kick = rng.normal(0, np.sqrt(1 - a * a), rows)
    out = np.empty(rows)
    out[0] = rng.normal()
    for i in range(1, rows):
        out[i] = a * out[i - 1] + kick[i]
    return out


def plan(rng: np.random.Generator, rows: int, train: int) -> list[Fault]:
    """Faults after the training part, each 60–300 rows with at least 60 healthy rows before the next."""
    out: list[Fault] = []
    at = train + int(rng.integers(60, 200))
    while at < rows - 80:
        n = int(min(rng.integers(60, 300), rows - at - 20))
        kind = FAULTS[int(rng.integers(len(FAULTS)))]
        size = float(rng.uniform(2, 6) if kind == "valve" else rng.uniform(0.1, 0.3))
        out.append(Fault(kind, at, n, size))
        at += n + int(rng.integers(60, 300))
    return out


def recording(seed: int, rows: int = 1500, train: int = 500) -> tuple[np.ndarray, np.ndarray, list[Fault]]:
    """(values [rows, 6] in `COLUMNS` order, labels [rows], faults) of one rig run."""
    rng = np.random.default_rng(seed)
    faults = plan(rng, rows, train)
    t = np.arange(rows)
    demand = 0.2 * wander(rng, rows, 150) + 0.08 * np.sin(2 * np.pi * t / rng.uniform(300, 700))
    k = 0.5 * np.exp(demand)
    """The loop's resistance (m per (L/s)²), moved by the operator's valve: flow about 3.5..5 L/s."""
    cav = np.zeros(rows)
    labels = np.zeros(rows, dtype=np.int8)
    for f in faults:
        ramp = np.clip((t - f.start) / max(f.rows * 0.15, 10), 0, 1) * ((t >= f.start) & (t < f.start + f.rows))
        if f.kind == "valve":
            k = k * (1 + (f.size - 1) * ramp)
        else:
            cav = np.maximum(cav, f.size * ramp)
        labels[f.start: f.start + f.rows] = 1
    rough = cav * rng.normal(0, 1, rows)
    h0 = H0_M * (1 - cav - 0.3 * np.abs(rough) * cav)
    q = np.sqrt(np.maximum(h0 - HS_M, 0.1) / (A_M_PER_LPS2 + k))
    head = h0 - A_M_PER_LPS2 * q**2
    eta = 0.68 * (1 - ((q - BEP_LPS) / BEP_LPS) ** 2 * 0.5)
    power_w = RHO_G * q / 1000 * head / np.maximum(eta, 0.2) + 180
    volts = 230 + 1.5 * wander(rng, rows, 120)
    amps = power_w / (volts * 0.85 * 0.88)
    losses = 0.12 * power_w + 8 * amps**2 * 0.1
    temp = np.empty(rows)
    temp[0] = 24 + losses[0] / 40
    for i in range(1, rows):  # first order, time constant 240 s
        temp[i] = temp[i - 1] + (24 + losses[i] / 40 - temp[i - 1]) / 240
    vib = 1.2 + 1.5 * ((q - BEP_LPS) / BEP_LPS) ** 2 + 18 * cav * (1 + 0.5 * np.abs(rng.normal(0, 1, rows)))
    values = np.stack([head * RHO_G / 1e6, q, amps, volts, temp, vib], axis=1)
    values += rng.normal(0, 1, values.shape) * np.array([NOISE[c] for c in COLUMNS])
    return np.maximum(values, 0), labels, faults


def write(path: Path, seed: int, rows: int = 1500, train: int = 500) -> list[Fault]:
    """One rig run as a CSV (epoch seconds, the metrics, `anomaly`); its faults."""
    values, labels, faults = recording(seed, rows, train)
    lines = ["time," + ",".join(COLUMNS) + ",anomaly"]
    lines += [f"{T0_S + i}," + ",".join(f"{x:.4f}" for x in row) + f",{labels[i]}" for i, row in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return faults


def main(argv: list[str] | None = None) -> None:
    """`python -m firewatch.simulators.rig DIR [--seeds 40] [--first 0]`: recordings and the rig's nameplate."""
    p = argparse.ArgumentParser(prog="python -m firewatch.simulators.rig", description=main.__doc__)
    p.add_argument("folder", type=Path)
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--first", type=int, default=0)
    a = p.parse_args(argv)
    a.folder.mkdir(parents=True, exist_ok=True)
    for seed in range(a.first, a.first + a.seeds):
        write(a.folder / f"rig{seed:03d}.csv", seed)
    plate = "".join(f"{k} = {v}\n" for k, v in NAMEPLATE.items())
    (a.folder / "firewatch.toml").write_text(f"[alerting.pump.nameplate]\n{plate}")


if __name__ == "__main__":
    main()
