"""Just enough of the ZIP format to copy a wheel's entries without recompressing them.

:mod:`zipfile` can only add an entry by compressing it again, and parsing the
central directory through it costs more than copying the whole wheel.  A
wheel is a plain ZIP (no ZIP64 below 4 GiB / 65535 entries, no encryption),
so reading the central directory and writing raw entries takes little code.
Output is verified in the tests by :mod:`zipfile` itself and by pip.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable


__all__ = ["Entry", "RawZip", "RawZipWriter"]

_EOCD = struct.Struct("<IHHHHIIH")  # end of central directory
_CDH = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header
_LFH = struct.Struct("<IHHHHHIIIHH")  # local file header
_EOCD_SIG, _CDH_SIG, _LFH_SIG = 0x06054B50, 0x02014B50, 0x04034B50
_OFFSET = struct.Struct("<I")  # a central directory record's local header offset, at byte 42
_UTF8 = 0x800
_CHUNK = 256 << 20
# A fixed timestamp (2026-01-01 00:00) keeps builds reproducible.
_DOS_DATE = (2026 - 1980) << 9 | 1 << 5 | 1
_DOS_TIME = 0


@dataclass
class Entry:
    """One member as the central directory describes it."""

    name: str
    header_offset: int
    compress_size: int
    file_size: int
    crc: int
    method: int
    record: bytes  # the central directory record, verbatim


class RawZip:
    """Read-only view of a ZIP file's central directory, with raw access to members."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.file = open(self.path, "rb")
        try:
            self._read_directory()
        except BaseException:
            self.file.close()
            raise

    def _read_directory(self) -> None:
        f = self.file
        size = f.seek(0, os.SEEK_END)
        tail_len = min(size, _EOCD.size + 0xFFFF)
        f.seek(size - tail_len)
        tail = f.read()
        at = tail.rfind(struct.pack("<I", _EOCD_SIG))
        if at < 0:
            raise ValueError(f"{self.path} is not a ZIP file (no end of central directory)")
        _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
        if count == 0xFFFF or cd_offset == 0xFFFFFFFF:
            raise ValueError(f"{self.path} is a ZIP64 archive, which wheels of this size never are")
        f.seek(cd_offset)
        cd = f.read(cd_size)
        entries, pos = [], 0
        for _ in range(count):
            sig, _, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _, _, offset = _CDH.unpack_from(cd, pos)
            if sig != _CDH_SIG:
                raise ValueError(f"{self.path}: corrupt central directory at byte {cd_offset + pos}")
            end = pos + _CDH.size + nlen + elen + clen
            raw = cd[pos + _CDH.size : pos + _CDH.size + nlen]
            # ASCII reads the same in both encodings, and the utf-8 codec is the fast one.
            name = raw.decode("utf-8" if flags & _UTF8 or raw.isascii() else "cp437")
            entries.append(Entry(name, offset, csize, usize, crc, method, cd[pos:end]))
            pos = end
        self.entries = entries
        self.by_name = {e.name: e for e in entries}
        self.directory_offset = cd_offset
        starts = sorted(e.header_offset for e in entries) + [cd_offset]
        # Where each member's bytes end: at the next member's local header.
        self._end = dict(zip(starts, starts[1:]))

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> RawZip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def span(self, entry: Entry) -> tuple[int, int]:
        """``[start, end)`` of the whole member (local header, data, descriptor)."""
        return entry.header_offset, self._end[entry.header_offset]

    def data_start(self, entry: Entry) -> int:
        self.file.seek(entry.header_offset)
        header = self.file.read(_LFH.size)
        if _LFH.unpack(header)[0] != _LFH_SIG:
            raise ValueError(f"{self.path}: no local header for {entry.name}")
        nlen, elen = _LFH.unpack(header)[-2:]
        return entry.header_offset + _LFH.size + nlen + elen

    def read(self, name: str) -> bytes:
        """The uncompressed bytes of member ``name`` (CRC-checked)."""
        entry = self.by_name[name]
        self.file.seek(self.data_start(entry))
        raw = self.file.read(entry.compress_size)
        if entry.method == zlib.DEFLATED:
            data = zlib.decompress(raw, -15)
        elif entry.method == 0:
            data = raw
        else:
            raise ValueError(f"{self.path}: {name} uses compression method {entry.method}")
        if zlib.crc32(data) != entry.crc:
            raise ValueError(f"{self.path}: CRC mismatch in {name}")
        return data


def copy_range(src: BinaryIO, dst: BinaryIO, start: int, length: int, tick: Callable[[int], None]) -> None:
    """Copy ``length`` bytes at ``start`` of ``src`` to the current end of ``dst``.

    ``dst`` must be unbuffered (``open(..., "wb", buffering=0)``): the copy
    goes through its file descriptor.
    """
    while length:
        n = min(length, _CHUNK)
        try:
            # In-kernel copy: the bytes never pass through Python.
            n = os.copy_file_range(src.fileno(), dst.fileno(), n, start)
        except (AttributeError, OSError):
            src.seek(start)
            buf = src.read(n)
            dst.write(buf)
            n = len(buf)
        if n == 0:
            raise OSError(f"unexpected end of {getattr(src, 'name', 'input')}")
        start += n
        length -= n
        tick(n)


class RawZipWriter:
    """Write a ZIP from raw copies of another ZIP's members plus new members."""

    def __init__(self, file: BinaryIO) -> None:
        """``file``: opened with ``open(path, "wb", buffering=0)``."""
        self.file = file
        self.pos = 0
        self.directory: list[bytes] = []  # central directory records, one or many per item
        self.count = 0  # members written

    def copy(self, src: RawZip, entries: list[Entry], tick: Callable[[int], None] = lambda n: None) -> None:
        """Copy members unchanged; adjacent members go in one contiguous copy."""
        runs: list[list[int]] = []
        run_out = self.pos  # where the current run starts in the output
        ends = src._end
        # The members' central-directory records, joined, with each new offset written in place.
        records = bytearray(b"".join(e.record for e in entries))
        at = 0
        for e in entries:
            start = e.header_offset
            end = ends[start]
            if runs and runs[-1][1] == start:
                runs[-1][1] = end
            else:
                if runs:
                    run_out += runs[-1][1] - runs[-1][0]
                runs.append([start, end])
            _OFFSET.pack_into(records, at + 42, run_out + start - runs[-1][0])
            at += len(e.record)
        self.directory.append(bytes(records))
        self.count += len(entries)
        for start, end in runs:
            copy_range(src.file, self.file, start, end - start, tick)
            self.pos += end - start

    def copy_renamed(self, src: RawZip, entry: Entry, name: str, tick: Callable[[int], None] = lambda n: None) -> None:
        """Copy one member's compressed bytes under a new name."""
        data_start = src.data_start(entry)
        src.file.seek(entry.header_offset)
        header = src.file.read(_LFH.size)
        fields = list(_LFH.unpack(header))
        old_nlen, elen = fields[-2:]
        src.file.seek(entry.header_offset + _LFH.size + old_nlen)
        extra = src.file.read(elen)
        raw_name = name.encode()
        fields[-2] = len(raw_name)
        offset = self.pos
        self.file.write(_LFH.pack(*fields) + raw_name + extra)
        self.pos += _LFH.size + len(raw_name) + elen
        _, end = src.span(entry)
        copy_range(src.file, self.file, data_start, end - data_start, tick)
        self.pos += end - data_start
        rec = entry.record
        nlen = struct.unpack_from("<H", rec, 28)[0]
        rest = rec[_CDH.size + nlen :]
        head = bytearray(rec[: _CDH.size])
        struct.pack_into("<H", head, 28, len(raw_name))
        self.directory.append(self._relocated(bytes(head) + raw_name + rest, offset))
        self.count += 1

    def add(self, name: str, data: bytes) -> None:
        """Add a new member, deflated, with a fixed timestamp and mode 0644."""
        # Fastest level: a few hundred KB of patched sources, where speed matters more than bytes.
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        raw = compressor.compress(data) + compressor.flush()
        raw_name = name.encode()
        flags = 0 if raw_name.isascii() else _UTF8
        crc = zlib.crc32(data)
        self.file.write(
            _LFH.pack(_LFH_SIG, 20, flags, zlib.DEFLATED, _DOS_TIME, _DOS_DATE, crc, len(raw), len(data), len(raw_name), 0)
            + raw_name
            + raw
        )
        self.directory.append(
            _CDH.pack(
                _CDH_SIG, 3 << 8 | 20, 20, flags, zlib.DEFLATED, _DOS_TIME, _DOS_DATE, crc, len(raw), len(data),
                len(raw_name), 0, 0, 0, 0, 0o100644 << 16, self.pos,
            )
            + raw_name
        )
        self.count += 1
        self.pos += _LFH.size + len(raw_name) + len(raw)

    def close(self) -> None:
        """Write the central directory and its end record."""
        directory = b"".join(self.directory)
        if self.count >= 0xFFFF or self.pos + len(directory) >= 0xFFFFFFFF:
            raise ValueError("the output would need ZIP64, which this writer does not produce")
        self.file.write(directory)
        self.file.write(_EOCD.pack(_EOCD_SIG, 0, 0, self.count, self.count, len(directory), self.pos, 0))

    @staticmethod
    def _relocated(record: bytes, offset: int) -> bytes:
        rec = bytearray(record)
        struct.pack_into("<I", rec, 42, offset)
        return bytes(rec)
