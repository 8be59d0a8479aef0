#!/usr/bin/env python3
"""A hostile SFTP server (protocol version 3) for spuff's tests (issue 13).

sshd runs it as its sftp subsystem (`Subsystem sftp python3 THIS MODE`), so
the client talks to a real sshd whose SFTP side lies the way a compromised VM
could: every directory it lists holds one entry whose name is chosen by MODE.

  dotdot     "../escaped"          climbs out of the download target
  absolute   "/tmp/spuff-escaped"  replaces the whole local path
  slash      "sub/escaped"         holds a separator
  backslash  "..\\escaped"          a separator on Windows
  dup        "twice", listed two times (a file, then a directory)
  deep       "d", a directory holding "d", without end (a loop)
  good       "fine.txt"            an honest file, to show the server works
  wide       a listing without end: every READDIR brings 4096 new names
  links      "loop" -> "loop", "up" -> "../../..", "abs" -> "/etc" (symlinks)
             and "fine.txt"
  liar       "fine.txt", whose size is said to be 1 TiB
  overread   "fine.txt", each READ answered with more bytes than asked
  stall      "big.bin" (96 KiB): the first READ is answered, then nothing

Every file holds the bytes b"evil\\n" (big.bin: 96 KiB). Only what spuff's
client sends is implemented: INIT, REALPATH, STAT, LSTAT, FSTAT, OPENDIR,
READDIR, OPEN, READ, READLINK, CLOSE; anything else gets OP_UNSUPPORTED.
"""

import struct
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "good"
NAMES = {
    "dotdot": ["../escaped"],
    "absolute": ["/tmp/spuff-escaped"],
    "slash": ["sub/escaped"],
    "backslash": ["..\\escaped"],
    "dup": ["twice", "twice"],
    "deep": ["d"],
    "good": ["fine.txt"],
    "wide": [],
    "links": ["loop", "up", "abs", "fine.txt"],
    "liar": ["fine.txt"],
    "overread": ["fine.txt"],
    "stall": ["big.bin"],
}[MODE]
LINKS = {"loop": "loop", "up": "../../..", "abs": "/etc"} if MODE == "links" else {}
CONTENT = b"x" * (96 * 1024) if MODE == "stall" else b"evil\n"

INIT, VERSION, OPEN, CLOSE, READ, LSTAT, FSTAT = 1, 2, 3, 4, 5, 7, 8
OPENDIR, READDIR, REALPATH, STAT, READLINK = 11, 12, 16, 17, 19
STATUS, HANDLE, DATA, NAME, ATTRS = 101, 102, 103, 104, 105
OK, EOF, NO_SUCH_FILE, UNSUPPORTED = 0, 1, 2, 8
SIZE, PERMS, TIMES = 0x1, 0x4, 0x8

inp = sys.stdin.buffer
out = sys.stdout.buffer


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = inp.read(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def string(b):
    return struct.pack(">I", len(b)) + b


def send(kind, payload):
    body = bytes([kind]) + payload
    out.write(struct.pack(">I", len(body)) + body)
    out.flush()


def attrs(is_dir, link=False):
    mode = 0o40755 if is_dir else 0o120777 if link else 0o100644
    size = 4096 if is_dir else len(CONTENT)
    if MODE == "liar" and not is_dir:
        size = 1 << 40
    # flags, size, permissions, atime, mtime
    return struct.pack(">IQIII", SIZE | PERMS | TIMES, size, mode, 0, 0)


def is_link(path):
    return path.rsplit("/", 1)[-1] in LINKS


def is_dir(path):
    # The listed directory and "twice" the second time are directories; in
    # "deep" every path is one.
    if MODE == "deep":
        return True
    return not path.rstrip("/").endswith(tuple(NAMES)) or path.endswith("/")


listed = {}
handles = {}
wide_next = [0]
dup_seen = [0]

while True:
    (length,) = struct.unpack(">I", read_exact(4))
    packet = read_exact(length)
    kind = packet[0]
    if kind == INIT:
        send(VERSION, struct.pack(">I", 3))
        continue
    (rid,) = struct.unpack(">I", packet[1:5])
    rest = packet[5:]

    def arg():
        (n,) = struct.unpack(">I", rest[:4])
        return rest[4 : 4 + n].decode("utf-8", "replace")

    if kind == REALPATH:
        path = arg()
        path = "/" + path.strip("/.") if path not in (".", "") else "/home"
        send(NAME, struct.pack(">II", rid, 1) + string(path.encode()) + string(path.encode()) + attrs(True))
    elif kind in (STAT, LSTAT):
        path = arg()
        if is_link(path) and kind == STAT:
            # Following "loop" never ends; the others lead outside.
            send(STATUS, struct.pack(">II", rid, NO_SUCH_FILE) + string(b"loop") + string(b""))
        else:
            send(ATTRS, struct.pack(">I", rid) + attrs(is_dir(path) and not is_link(path), is_link(path)))
    elif kind == READLINK:
        target = LINKS.get(arg().rsplit("/", 1)[-1], "x").encode()
        send(NAME, struct.pack(">II", rid, 1) + string(target) + string(target) + attrs(False))
    elif kind == OPENDIR:
        h = ("d%d" % len(handles)).encode()
        handles[h] = arg()
        listed[h] = False
        send(HANDLE, struct.pack(">I", rid) + string(h))
    elif kind == READDIR:
        (n,) = struct.unpack(">I", rest[:4])
        h = rest[4 : 4 + n]
        if listed.get(h):
            send(STATUS, struct.pack(">II", rid, EOF) + string(b"eof") + string(b""))
            continue
        if MODE == "wide":
            # Never EOF: the next batch of new names each time.
            first = wide_next[0]
            wide_next[0] += 4096
            entries = b"".join(
                string(b"n%d" % i) + string(b"n%d" % i) + attrs(False) for i in range(first, first + 4096)
            )
            send(NAME, struct.pack(">II", rid, 4096) + entries)
            continue
        listed[h] = True
        entries = b""
        for i, name in enumerate(NAMES):
            as_dir = (MODE == "dup" and i == 1) or MODE == "deep"
            entries += string(name.encode()) + string(name.encode()) + attrs(as_dir, name in LINKS)
        send(NAME, struct.pack(">II", rid, len(NAMES)) + entries)
    elif kind == OPEN:
        h = ("f%d" % len(handles)).encode()
        handles[h] = arg()
        send(HANDLE, struct.pack(">I", rid) + string(h))
    elif kind == READ:
        (n,) = struct.unpack(">I", rest[:4])
        (offset, size) = struct.unpack(">QI", rest[4 + n : 16 + n])
        if MODE == "stall" and offset > 0:
            continue  # never answered
        if MODE == "overread":
            send(DATA, struct.pack(">I", rid) + string(CONTENT * 100))
        elif offset >= len(CONTENT):
            send(STATUS, struct.pack(">II", rid, EOF) + string(b"eof") + string(b""))
        else:
            send(DATA, struct.pack(">I", rid) + string(CONTENT[offset : offset + size]))
    elif kind == FSTAT:
        send(ATTRS, struct.pack(">I", rid) + attrs(False))
    elif kind == CLOSE:
        send(STATUS, struct.pack(">II", rid, OK) + string(b"ok") + string(b""))
    else:
        send(STATUS, struct.pack(">II", rid, UNSUPPORTED) + string(b"unsupported") + string(b""))
