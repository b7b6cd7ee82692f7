"""Message definitions stored in bags (rosbag2's ``ros2msg`` text with its dependencies, or
``ros2idl``) turned into ``rosbags`` type definitions: reading bags of another message version
(:class:`.io.BagReader`) and rebuilding recordings (:mod:`.recover`)."""
from __future__ import annotations


def types_from_definition(msgtype: str, data: str) -> dict:
    """rosbags type definitions from a connection's stored definition (rosbag2's ``ros2msg``
    text with its dependencies, or ``ros2idl``); ``{}`` when it cannot be parsed."""
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    sep = "=" * 80 + "\n"
    types = {}
    try:
        if data.startswith(sep + "IDL: "):
            for part in data.split(sep)[1:]:
                types.update(get_types_from_idl(part.split("\n", 1)[1]))
            return types
        parts = data.split(sep)
        types.update(get_types_from_msg(parts[0], msgtype))
        for part in parts[1:]:
            head, body = part.split("\n", 1)
            name = head.removeprefix("MSG: ").strip()
            if name.count("/") == 1:
                name = name.replace("/", "/msg/")
            types.update(get_types_from_msg(body, name))
    except Exception:  # noqa: BLE001 - an odd definition only matters if we deserialize it
        return {}
    return types


def same_fields(a, b) -> bool:
    """Two rosbags definitions ``(consts, fields)`` describe the same wire format."""
    return [tuple(f) for f in a[1]] == [tuple(f) for f in b[1]]


def register_msgdef(store, msgtype: str, data: str) -> None:
    """Register the message definition ``data`` (a bag's ``ros2msg`` text with its dependencies,
    or ``ros2idl``) of ``msgtype`` in ``store``, for types that are not installed (e.g. the
    vita_grasp messages of another version). Best effort: an odd definition only matters when a
    message of that type is deserialized."""
    if not data or msgtype in store.fielddefs:
        return
    types = types_from_definition(msgtype, data)
    try:
        store.register({k: v for k, v in types.items() if k not in store.fielddefs})
    except Exception:  # noqa: BLE001 - see above
        pass
