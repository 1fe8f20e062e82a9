"""The dbus-fast adapter: what the metadata service hears from systemd-machined (asyncio).

The only module that speaks dbus-fast; stage1/systemd.py is pystemd's (synchronous) adapter."""

from __future__ import annotations

from collections.abc import Callable

from dbus_fast import BusType, Message
from dbus_fast.aio import MessageBus

MACHINED = "org.freedesktop.machine1"
MANAGER = "org.freedesktop.machine1.Manager"


async def watch_removed(on_removed: Callable[[str], None]) -> MessageBus:
    """Call ``on_removed(machine name)`` whenever machined drops a machine; returns the open bus
    (disconnect it to stop). A match rule, not a proxy: no introspection, machined need not run yet."""
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()

    def handler(message: Message) -> None:
        if message.interface == MANAGER and message.member == "MachineRemoved" and message.body:
            on_removed(str(message.body[0]))

    bus.add_message_handler(handler)
    rule = f"type='signal',sender='{MACHINED}',interface='{MANAGER}',member='MachineRemoved'"
    await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[rule],
        )
    )
    return bus
