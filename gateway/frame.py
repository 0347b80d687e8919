"""GB/T 26875.3-2011 framing, sans-I/O: bytes in, frames or rejections out; frames in, bytes out.

A frame is `@@` · serial (2) · version (2) · time (6) · source (6) · destination (6) ·
data-unit length (2) · command (1) · data unit · checksum (1) · `##`, multi-byte fields
little-endian. The decoder never trusts a length it has not bounded: a declared length
over the variant's limit is refused before a byte of the body is buffered, so a hostile
peer costs at most one frame's worth of memory. Everything a device can send ends as a
`Frame` or a `Rejection` whose `Reason` is also the metric label; nothing raises.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum

from firewatch.contract.settings import Gb26875Variant

START = b"@@"
END = b"##"
HEADER = struct.Struct("<HH6s6s6sHB")
"""serial, version, time, source, destination, data-unit length, command (after `@@`)."""
HEAD_BYTES = len(START) + HEADER.size
TRAILER_BYTES = 1 + len(END)
VERSION = 0x0101
"""Major 1, minor 1: what the 2011 edition's devices send."""
STANDARD = Gb26875Variant()


class Command(IntEnum):
    CONTROL = 1
    SEND = 2
    CONFIRM = 3
    REQUEST = 4
    REPLY = 5
    DENY = 6


VENDOR_COMMANDS = range(128, 256)


class Reason(StrEnum):
    """Why bytes were refused; also the label of the gateway's rejected-frames counter.

    `skipped` bytes are not a frame at all (no serial to deny); every other reason is
    answered with a deny (command 6) echoing the frame's serial.
    """

    SKIPPED = "skipped"
    BAD_LENGTH = "bad_length"
    BAD_END = "bad_end"
    BAD_CHECKSUM = "bad_checksum"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_DATA_UNIT = "bad_data_unit"
    UNKNOWN_TYPE = "unknown_type"


@dataclass(frozen=True, slots=True)
class Frame:
    serial: int
    command: int
    source: str
    """The sender's address as 12 hex digits (the 48-bit number, most significant first)."""
    destination: str
    data: bytes = b""
    time: datetime | None = None
    """The sender's clock (local time, no zone); None when its bytes are not a valid time."""
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    serial: int | None = None
    source: str | None = None
    destination: str | None = None


VariantFor = Callable[[bytes], Gb26875Variant]
"""The variant for a frame, given its raw 6 source-address bytes (per-device settings)."""


def address_hex(raw: bytes, order: str) -> str:
    return int.from_bytes(raw, order).to_bytes(6, "big").hex()  # type: ignore[arg-type]


def address_bytes(hex12: str, order: str) -> bytes:
    return int(hex12, 16).to_bytes(6, order)  # type: ignore[arg-type]


def checksum(body: bytes | memoryview, method: str) -> int:
    if method == "xor":
        x = 0
        for b in body:
            x ^= b
        return x
    return sum(body) & 0xFF


def _bcd(b: int) -> int:
    return (b >> 4) * 10 + (b & 0x0F) if (b >> 4) < 10 and (b & 0x0F) < 10 else -1


def decode_time(raw: bytes, method: str) -> datetime | None:
    """Six bytes s, min, h, d, mon, yy (years since 2000); None when they name no real time."""
    v = [_bcd(b) for b in raw] if method == "bcd" else list(raw)
    try:
        return datetime(2000 + v[5], v[4], v[3], v[2], v[1], v[0]) if min(v) >= 0 else None
    except ValueError:
        return None


def encode_time(t: datetime | None, method: str) -> bytes:
    if t is None:
        return bytes(6)
    v = (t.second, t.minute, t.hour, t.day, t.month, t.year - 2000)
    if not all(0 <= x <= 99 for x in v):
        raise ValueError(f"{t} cannot be sent: the standard's years run 2000-2099")
    return bytes(((x // 10) << 4) | (x % 10) for x in v) if method == "bcd" else bytes(v)


def encode(frame: Frame, variant: Gb26875Variant = STANDARD) -> bytes:
    """One frame on the wire; raises ValueError for a data unit over the variant's limit."""
    if len(frame.data) > variant.max_unit_bytes:
        raise ValueError(f"data unit of {len(frame.data)} bytes > {variant.max_unit_bytes}")
    body = HEADER.pack(
        frame.serial & 0xFFFF,
        frame.version,
        encode_time(frame.time, variant.time),
        address_bytes(frame.source, variant.address_order),
        address_bytes(frame.destination, variant.address_order),
        len(frame.data),
        frame.command,
    ) + frame.data
    return START + body + bytes((checksum(body, variant.checksum),)) + END


def _known_command(command: int) -> bool:
    return 1 <= command <= 6 or command in VENDOR_COMMANDS


class Decoder:
    """Incremental: `feed()` the bytes of one connection as they arrive, in any split."""

    def __init__(self, variant_for: VariantFor | Gb26875Variant = STANDARD) -> None:
        self.variant_for: VariantFor = (
            variant_for if callable(variant_for) else (lambda _raw, v=variant_for: v)
        )
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame | Rejection]:
        self.buffer += data
        out: list[Frame | Rejection] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _skip_to_start(self) -> Rejection | None:
        buf = self.buffer
        at = buf.find(START)
        if at == 0:
            return None
        drop = len(buf) - (1 if buf.endswith(b"@") else 0) if at < 0 else at
        if drop == 0:
            return None
        junk = bytes(buf[: min(drop, 16)])
        del buf[:drop]
        return Rejection(Reason.SKIPPED, f"{drop} bytes before a frame start: {junk.hex()}…")

    def _next(self) -> Frame | Rejection | None:
        skipped = self._skip_to_start()
        if skipped is not None:
            return skipped
        buf = self.buffer
        if len(buf) < HEAD_BYTES:
            return None
        serial, version, raw_time, raw_src, raw_dst, length, command = HEADER.unpack_from(buf, 2)
        variant = self.variant_for(raw_src)
        src = address_hex(raw_src, variant.address_order)
        dst = address_hex(raw_dst, variant.address_order)

        def refuse(reason: Reason, detail: str, consumed: int) -> Rejection:
            del buf[:consumed]
            return Rejection(reason, detail, serial, src, dst)

        if length > variant.max_unit_bytes:
            # Resynchronise after the start bytes: the real next frame may be inside.
            return refuse(Reason.BAD_LENGTH, f"data unit of {length} bytes > {variant.max_unit_bytes}", 2)
        total = HEAD_BYTES + length + TRAILER_BYTES
        if len(buf) < total:
            return None
        if buf[total - 2 : total] != END:
            return refuse(Reason.BAD_END, f"no ## after {length} data bytes", 2)
        body = memoryview(buf)[2 : total - 3]
        want = checksum(body, variant.checksum)
        got = buf[total - 3]
        body.release()
        if got != want:
            return refuse(Reason.BAD_CHECKSUM, f"checksum {got:#04x}, frame sums to {want:#04x}", total)
        if not _known_command(command):
            return refuse(Reason.UNKNOWN_COMMAND, f"command {command} is not 1-6 or 128-255", total)
        data = bytes(buf[HEAD_BYTES : HEAD_BYTES + length])
        del buf[:total]
        return Frame(serial, command, src, dst, data, decode_time(raw_time, variant.time), version)


def reply(to: Frame, command: Command, center: str, variant: Gb26875Variant = STANDARD,
          data: bytes = b"", time: datetime | None = None) -> bytes:
    """A confirm, deny or reply to `to`: the same serial, addresses swapped."""
    return encode(Frame(to.serial, command, center, to.source, data, time), variant)


def deny(rejection: Rejection, center: str, variant: Gb26875Variant = STANDARD) -> bytes | None:
    """The deny for a refused frame, or None for skipped bytes (no serial to answer)."""
    if rejection.serial is None or rejection.source is None:
        return None
    return encode(Frame(rejection.serial, Command.DENY, center, rejection.source), variant)
