"""The key-value snapshot file format of butlerd(8), "Persistence" (version 2),
read and written independently of butlerd for the tests.

decode() returns the same shape as the JSON format of version 1, so tests can
compare either: {"format": "butlerd-kv", "version": 2, "savedAt": <ms>,
"namespaces": [{"namespace": str, "keys": [{"key": str, "value": str,
"expiresAt": int or None}]}]}."""

import hashlib
import struct

MAGIC = b"BUTLERKV"
VERSION = 2
HEADER = 32


class SnapshotError(ValueError):
    pass


def decode(data):
    """Parse and check a whole file (structure, counts, SHA-256)."""
    if len(data) < HEADER + 32 or data[:8] != MAGIC:
        raise SnapshotError("not a version 2 snapshot")
    version, hsize, saved_at, reserved = struct.unpack_from("<IIqQ", data, 8)
    if version != VERSION or hsize < HEADER:
        raise SnapshotError("version %d, header %d" % (version, hsize))
    body_end = len(data) - 32
    if hashlib.sha256(data[:body_end]).digest() != data[body_end:]:
        raise SnapshotError("checksum mismatch")
    pos = hsize
    out = []
    nkeys = 0
    while True:
        if pos >= body_end:
            raise SnapshotError("no end record")
        t = data[pos:pos + 1]
        pos += 1
        if t == b"N":
            (n,) = struct.unpack_from("<I", data, pos)
            pos += 4
            out.append({"namespace": data[pos:pos + n].decode("utf-8"), "keys": []})
            pos += n
        elif t == b"K":
            if not out:
                raise SnapshotError("key before namespace")
            klen, vlen, exp = struct.unpack_from("<IIq", data, pos)
            pos += 16
            key = data[pos:pos + klen].decode("utf-8")
            pos += klen
            value = data[pos:pos + vlen].decode("utf-8")
            pos += vlen
            out[-1]["keys"].append({"key": key, "value": value,
                                    "expiresAt": exp if exp else None})
            nkeys += 1
        elif t == b"E":
            nns, nk = struct.unpack_from("<QQ", data, pos)
            pos += 16
            if (nns, nk) != (len(out), nkeys):
                raise SnapshotError("end record counts %r, file has %r" % (
                    (nns, nk), (len(out), nkeys)))
            if pos != body_end:
                raise SnapshotError("data after the end record")
            break
        else:
            raise SnapshotError("unknown record %r at %d" % (t, pos - 1))
    return {"format": "butlerd-kv", "version": version, "savedAt": saved_at,
            "namespaces": out}


def encode(namespaces, saved_at=0):
    """A version 2 file from [{"namespace", "keys": [{"key", "value",
    "expiresAt"}]}] (strings, or bytes used as they are)."""
    def b(s):
        return s if isinstance(s, bytes) else s.encode("utf-8")

    parts = [MAGIC, struct.pack("<IIqQ", VERSION, HEADER, saved_at, 0)]
    nkeys = 0
    for ns in namespaces:
        name = b(ns["namespace"])
        parts.append(b"N" + struct.pack("<I", len(name)) + name)
        for k in ns["keys"]:
            key, value = b(k["key"]), b(k["value"])
            parts.append(b"K" + struct.pack("<IIq", len(key), len(value),
                                            k.get("expiresAt") or 0) + key + value)
            nkeys += 1
    parts.append(b"E" + struct.pack("<QQ", len(namespaces), nkeys))
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()
