"""Which site each device belongs to, from the device registry in the SQL store."""

from __future__ import annotations

from sqlalchemy import select

from firewatch.contract.db import Device, Store


async def load_sites(store_url: str) -> dict[str, str]:
    """device id -> site, for devices that have one; retired devices keep theirs for late data."""
    store = Store(store_url)
    try:
        async with store.session() as session:
            rows = await session.execute(select(Device.id, Device.site).where(Device.site != ""))
            return {device_id: site for device_id, site in rows}
    finally:
        await store.aclose()
