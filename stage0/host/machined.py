"""The dbus-fast adapter: what the metadata service hears from systemd-machined (asyncio).

The only module that speaks dbus-fast; stage1/systemd.py is pystemd's (synchronous) adapter."""

from __future__ import annotations

from collections.abc import Callable

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

MACHINED = "org.freedesktop.machine1"
MANAGER = "org.freedesktop.machine1.Manager"
MACHINE = "org.freedesktop.machine1.Machine"
PATH = "/org/freedesktop/machine1"


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


async def machine_roots(bus: MessageBus) -> list[tuple[str, str]]:
    """(name, root directory) of every machine machined knows (none when machined does not run)."""
    listed = await bus.call(
        Message(destination=MACHINED, path=PATH, interface=MANAGER, member="ListMachines")
    )
    if listed is None or listed.message_type is not MessageType.METHOD_RETURN:
        return []
    roots = []
    for name, _class, _service, path in listed.body[0]:
        reply = await bus.call(
            Message(
                destination=MACHINED,
                path=path,
                interface="org.freedesktop.DBus.Properties",
                member="Get",
                signature="ss",
                body=[MACHINE, "RootDirectory"],
            )
        )
        if reply is not None and reply.message_type is MessageType.METHOD_RETURN and reply.body[0].value:
            roots.append((str(name), str(reply.body[0].value)))
    return roots
