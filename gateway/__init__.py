"""The GB/T 26875.3-2011 gateway: user information transmission devices over TCP in, the wire contract on MQTT out.

frame (sans-I/O framing) → units (data units) → adaptor (panel events) → service (asyncio
TCP server, QoS 1 publisher, link inspection, duty checks).
"""

from firewatch.gateway.adaptor import UNASSIGNED, unregistered_id
from firewatch.gateway.duty import DutyCheck, DutyRequest, DutyResult
from firewatch.gateway.frame import Command, Decoder, Frame, Reason, Rejection, encode
from firewatch.gateway.publisher import DUTY_REQUESTS
from firewatch.gateway.service import Gateway, run
from firewatch.gateway.units import DataUnit, decode_unit, encode_unit

__all__ = [
    "DUTY_REQUESTS",
    "UNASSIGNED",
    "Command",
    "DataUnit",
    "Decoder",
    "DutyCheck",
    "DutyRequest",
    "DutyResult",
    "Frame",
    "Gateway",
    "Reason",
    "Rejection",
    "decode_unit",
    "duty",
    "encode",
    "encode_unit",
    "frame",
    "publisher",
    "run",
    "service",
    "units",
    "unregistered_id",
]
"""Besides these names, the modules the api, the command and the benchmark use are public too."""
