#!/usr/bin/env python3
"""A hostile `tar -c` for spuff's tests (issue 14).

sshd runs it as its ForceCommand (`ForceCommand python3 THIS MODE`), so the
client talks to a real sshd whose tree downloads lie the way a compromised
VM could. Commands other than the download (the SFTP subsystem, uploads)
run for real, so the client finds the directory over SFTP. The download's output is spuff's totals line, then an
archive whose entries MODE chooses:

  honest    a directory, a file, a symlink: what a real tar sends
  dotdot    "./../escaped-tar"                climbs out of the target
  absolute  "/tmp/spuff-escaped-tar"         a path outside the tree
  through   "./d" -> ELSEWHERE (a symlink), then the file "./d/planted"
  nodir     the file "./a/planted" without a directory "./a/" before it
  dup       "./twice" as a file, then again
  longname  a GNU long name of 1 MiB
  short     "./big.bin" said to hold 10 MiB; the stream ends after 4 KiB
  pax       a PAX header before "./fine.txt"
  special   a FIFO, a hard link and a character device, then "./fine.txt"
  fails     "./fine.txt", then exit 2 with tar's message on stderr
  bigtime   "./fine.txt" with an mtime of 2**64 - 1 seconds (base-256)
  drop      (an upload) `tar -x` reads the archive, writes nothing and
            says it succeeded

and for the second half of a big file's upload over two channels (the
`dd` that writes at an offset; the first half is written for real):

  splitdrop   reads its half, writes nothing and exits 0
  splitfails  reads its half, writes nothing, exits 1 with dd's message

and for a single file's download through `cat` (spuff's `spuff-cat SIZE
MODE MTIME` line, then the bytes):

  catnoise  a login banner first, then an honest line and "hello"
  catlong   says 5 bytes, sends 10
  catshort  says 10 bytes, sends 5, exits 0
  catfails  says 5 bytes, sends them, then exits 1 with cat's message
  cattime   an mtime of 2**64 - 1 seconds, then "hello"

ELSEWHERE is the second argument (the test's directory outside the target).
"""

import io
import os
import subprocess
import sys
import tarfile

MODE = sys.argv[1]
ELSEWHERE = sys.argv[2] if len(sys.argv) > 2 else "/tmp"
COMMAND = os.environ.get("SSH_ORIGINAL_COMMAND", "")


def real():
    """Run what the client asked for (the probe), or the SFTP server."""
    if COMMAND in ("", "sftp", "internal-sftp") or "sftp-server" in COMMAND:
        os.execv("/usr/lib/openssh/sftp-server", ["sftp-server"])
    os.execv("/bin/sh", ["sh", "-c", COMMAND])


def info(name, kind=tarfile.REGTYPE, size=0, link=""):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.size = size
    t.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    t.mtime = 1_500_000_000
    t.linkname = link
    return t


def archive(fmt=tarfile.GNU_FORMAT):
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w", format=fmt)
    return out, tar


def add_file(tar, name, data=b"evil\n"):
    tar.addfile(info(name, size=len(data)), io.BytesIO(data))


def cat():
    """The single-file download: a header line, then the bytes."""
    out = sys.stdout.buffer
    code = 0
    if MODE == "catnoise":
        out.write(b"Welcome to the VM!\nspuff-cat 5 416 1500000000\nhello")
    elif MODE == "catlong":
        out.write(b"spuff-cat 5 420 1500000000\n" + b"x" * 10)
    elif MODE == "catshort":
        out.write(b"spuff-cat 10 420 1500000000\nhello")
    elif MODE == "cattime":
        out.write(b"spuff-cat 5 420 18446744073709551615\nhello")
    elif MODE == "catfails":
        out.write(b"spuff-cat 5 420 1500000000\nhello")
        code = 1
    else:
        sys.exit(f"unknown mode {MODE}")
    out.flush()
    if code:
        sys.stderr.write("cat: -: Input/output error\n")
    sys.exit(code)


def main():
    if MODE.startswith("cat") and "spuff-cat" in COMMAND:
        cat()
    if MODE == "drop" and "tar -x -f -" in COMMAND:
        # The real command, with tar's extraction swapped for a sink.
        fake = COMMAND.replace("tar -x -f -", "cat >/dev/null; : ", 1)
        os.execv("/bin/sh", ["sh", "-c", fake])
    if MODE.startswith("split") and "oflag=seek_bytes" in COMMAND:
        # The real command up to its `dd`, which becomes a sink.
        sink = "cat >/dev/null; "
        if MODE == "splitfails":
            sink += 'echo "dd: error writing: No space left on device" >&2; exit 1; '
        fake = COMMAND.replace("exec dd ", sink + ": ", 1)
        os.execv("/bin/sh", ["sh", "-c", fake])
    if "exec tar -c" not in COMMAND:
        real()
    out, tar = archive(tarfile.PAX_FORMAT if MODE == "pax" else tarfile.GNU_FORMAT)
    tar.addfile(info("./", tarfile.DIRTYPE))
    code = 0
    if MODE == "honest":
        tar.addfile(info("./sub/", tarfile.DIRTYPE))
        add_file(tar, "./sub/fine.txt")
        tar.addfile(info("./link", tarfile.SYMTYPE, link="sub/fine.txt"))
    elif MODE == "dotdot":
        add_file(tar, "./../escaped-tar")
    elif MODE == "absolute":
        add_file(tar, "/tmp/spuff-escaped-tar")
    elif MODE == "through":
        tar.addfile(info("./d", tarfile.SYMTYPE, link=ELSEWHERE))
        add_file(tar, "./d/planted")
    elif MODE == "nodir":
        add_file(tar, "./a/planted")
    elif MODE == "dup":
        add_file(tar, "./twice")
        add_file(tar, "./twice")
    elif MODE == "longname":
        add_file(tar, "./" + "x" * (1 << 20))
    elif MODE == "short":
        t = info("./big.bin", size=10 << 20)
        tar.fileobj.write(t.tobuf(tarfile.GNU_FORMAT))
        tar.fileobj.write(b"\x01" * 4096)
        tar.closed = True
    elif MODE == "pax":
        t = info("./fine.txt", size=5)
        t.pax_headers = {"comment": "a PAX record"}
        tar.addfile(t, io.BytesIO(b"evil\n"))
    elif MODE == "special":
        tar.addfile(info("./fifo", tarfile.FIFOTYPE))
        tar.addfile(info("./hard", tarfile.LNKTYPE, link="./fine.txt"))
        tar.addfile(info("./tty", tarfile.CHRTYPE))
        add_file(tar, "./fine.txt")
    elif MODE == "fails":
        add_file(tar, "./fine.txt")
        code = 2
    elif MODE == "bigtime":
        t = info("./fine.txt", size=5)
        t.mtime = 2**64 - 1
        tar.addfile(t, io.BytesIO(b"evil\n"))
    else:
        sys.exit(f"unknown mode {MODE}")
    if not tar.closed:
        tar.close()
    sys.stdout.buffer.write(b"spuff-tar 1 5\n" + out.getvalue())
    sys.stdout.buffer.flush()
    if code:
        sys.stderr.write("tar: ./secret: Cannot open: Permission denied\n")
        sys.stderr.write("tar: Exiting with failure status due to previous errors\n")
    sys.exit(code)


main()
