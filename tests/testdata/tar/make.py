"""Regenerate the reference tars/headers in this directory (Python 3.11+ tarfile, PAX_FORMAT)."""
import io
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def pattern(n):
    # Deterministic body bytes; the tests rebuild the same bytes.
    return bytes((i * 7 + 3) % 256 for i in range(n))


def write_tar(filename, entries):
    with tarfile.open(os.path.join(HERE, filename), "w") as tar:
        for name, body in entries:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


def write_header(filename, name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    with open(os.path.join(HERE, filename), "wb") as f:
        f.write(info.tobuf(tarfile.PAX_FORMAT))


write_tar("small.tar", [
    ("hello.txt", b"hello\n"),
    ("empty.txt", b""),
    ("dir/exact-512.bin", pattern(512)),
    ("dir/odd-1000.bin", pattern(1000)),
    ("dir/big-12345.bin", pattern(12345)),
])
write_tar("pax.tar", [
    ("long/" + "n" * 92 + ".txt", b"long\n"),  # 101 chars
    ("x" * 96 + ".txt", b""),  # exactly 100 chars: no pax header
    ("h\u00e9llo/w\u00f6rld-\U0001F600.txt", b"unicode\n"),
    ("\u00e9" * 46, pattern(3)),  # 92 UTF-8 bytes: record length prefix jumps 2 -> 3 digits
    ("deep/" * 39 + "deep.bin", pattern(600)),  # 203 chars
])
write_header("header-8gib.bin", "big.bin", 8 * 1024**3)
write_header("header-ustar-max.bin", "max.bin", 8**11 - 1)
write_header("header-8gib-path.bin", "gr\u00f6\u00dfe/" + "z" * 100 + ".bin", 8 * 1024**3 + 1)
