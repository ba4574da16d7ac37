#!/usr/bin/env python3
"""Writes the hostile layer tars next to this script (deterministic: run it again to
regenerate). Each tar tries one way to escape or confuse the unpacker; the expected outcome
of each is pinned in oci/tests/hostile_tars.rs."""
import gzip
import io
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def info(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, dev=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1_700_000_000
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti, data


def write(name, entries, compress=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.size else None)
    raw = buf.getvalue()
    if compress:
        raw = gzip.compress(raw, mtime=0)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(raw)


D, S, L, C, B, F = (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                    tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)

write("traversal.tar", [info("../escape.txt", data=b"pwned\n")])
write("traversal-nested.tar", [info("a/", D, mode=0o755),
                               info("a/../../escape.txt", data=b"pwned\n")])
write("traversal-longname.tar", [info("x" * 120 + "/../../../escape.txt", data=b"pwned\n")])
write("absolute.tar", [info("/kiln-hostile-absolute.txt", data=b"contained\n")])
write("symlink-then-file.tar", [info("etc", S, link="/etc"),
                                info("etc/passwd", data=b"root::0:0::/:/bin/sh\n")])
write("symlink-relative-escape.tar", [info("a", S, link="../outside"),
                                      info("a/pwned", data=b"pwned\n")])
write("symlink-dir-swap.tar", [info("d/", D, mode=0o755), info("d", S, link="../outside"),
                               info("d/pwned", data=b"pwned\n")])
write("symlink-then-overwrite.tar", [info("f", S, link="../outside/secret"),
                                     info("f", data=b"replaced, not followed\n")])
write("hardlink-outside.tar", [info("h", L, link="../outside/secret")])
write("hardlink-absolute.tar", [info("h", L, link="/etc/passwd")])
write("hardlink-through-symlink.tar", [info("l", S, link="../outside"),
                                       info("h", L, link="l/secret")])
write("hardlink-to-symlink.tar", [info("s", S, link="../outside/secret"),
                                  info("h", L, link="s"),
                                  info("h", data=b"replaced\n")])
write("devices.tar", [info("dev/", D, mode=0o755),
                      info("dev/null", C, mode=0o666, dev=(1, 3)),
                      info("dev/sda", B, mode=0o660, dev=(8, 0)),
                      info("dev/fifo", F, mode=0o600)])
write("duplicates.tar", [info("f", data=b"one\n"), info("f", data=b"two\n"),
                         info("d", data=b"file first\n"), info("d/", D, mode=0o755),
                         info("d/child", data=b"child\n"),
                         info("x/", D, mode=0o755), info("x/child", data=b"gone\n"),
                         info("x", data=b"file last\n")])
write("whiteout-dot.tar", [info(".wh..", data=b"")])
write("whiteout-dotdot.tar", [info("a/.wh...", data=b"")])
write("empty-name.tar", [info("./", D, mode=0o755), info(".", data=b"file at root\n")])
write("many-entries.tar.gz",
      [info(f"d{i // 100:03}/f{i % 100:03}", data=b"%d\n" % i) for i in range(10_000)],
      compress=True)
with open(os.path.join(HERE, "truncated.tar"), "wb") as f:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti, data = info("big", data=b"y" * 100_000)
        tf.addfile(ti, io.BytesIO(data))
    f.write(buf.getvalue()[:5000])
with open(os.path.join(HERE, "garbage.tar"), "wb") as f:
    f.write(bytes((i * 37 + 11) % 256 for i in range(4096)))
