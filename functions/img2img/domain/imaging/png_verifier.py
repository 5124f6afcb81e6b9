"""The PNG verifier: every PNG is checked chunk by chunk and its pixel stream inflated once, because
Pillow skips IDAT checksums and quietly leaves rows blank when the zlib stream ends early. A PNG
that passes, and is plain enough, may be sent to the model as it is."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from img2img.domain.imaging.formats import PNG_SIGNATURE

_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
_INFLATE_STEP = 8 * 1024 * 1024  # bytes of pixel stream inflated at a time: bounded memory

# PNG chunks that carry no metadata worth stripping and do not change how Pillow decodes the
# pixels: a clean 8-bit RGB PNG with only these may be sent as it is.
_PASSTHROUGH_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"cHRM", b"pHYs", b"sBIT"})


@dataclass(frozen=True)
class PngLayout:
    chunks: tuple[bytes, ...]  # types in order; b"" stands for bytes after IEND
    idat: tuple[tuple[int, int], ...]  # (offset, length) of each IDAT payload
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlace: int

    @classmethod
    def read(cls, data: bytes) -> PngLayout:
        """Walk the chunks up to IEND, checking each CRC."""
        view = memoryview(data)
        pos, chunks, idat = len(PNG_SIGNATURE), [], []
        while pos < len(data):
            if pos + 12 > len(data):
                raise SyntaxError("PNG chunk header cut off")
            length, kind = struct.unpack_from(">I4s", data, pos)
            end = pos + 8 + length
            if end + 4 > len(data):
                raise SyntaxError(f"PNG chunk {kind!r} cut off")
            if zlib.crc32(view[pos + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
                raise SyntaxError(f"PNG chunk {kind!r} fails its checksum")
            chunks.append(kind)
            if kind == b"IDAT":
                idat.append((pos + 8, length))
            pos = end + 4
            if kind == b"IEND":
                if pos < len(data):
                    chunks.append(b"")
                break
        if chunks[:1] != [b"IHDR"] or len(data) < 33:
            raise SyntaxError("PNG does not start with IHDR")
        width, height, bit_depth, colour_type, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
        if colour_type not in _CHANNELS:
            raise SyntaxError(f"PNG colour type {colour_type} does not exist")
        return cls(tuple(chunks), tuple(idat), width, height, bit_depth, colour_type, interlace)

    def stream_length(self) -> int:
        """Bytes the inflated pixel stream must hold: per row, a filter byte and the samples."""
        bits = _CHANNELS[self.colour_type] * self.bit_depth

        def rows(width: int, height: int) -> int:
            return height * (1 + (width * bits + 7) // 8) if width and height else 0

        if not self.interlace:
            return rows(self.width, self.height)
        return sum(
            rows(max(0, -(-(self.width - x) // dx)), max(0, -(-(self.height - y) // dy)))
            for x, y, dx, dy in _ADAM7
        )

    def check_pixel_stream(self, data: bytes) -> None:
        """Inflate the IDAT stream (without keeping it): it must end, hold exactly the rows the
        header declares and, for plain PNGs, name a known filter on every row. Nothing can then
        fail in unfiltering: this is a full decode for pass-through purposes."""
        expected = self.stream_length()
        stride = 0 if self.interlace else expected // self.height if self.height else 0
        inflater, produced, view = zlib.decompressobj(), 0, memoryview(data)
        for offset, length in self.idat:
            pending: bytes | memoryview = view[offset : offset + length]
            while pending and not inflater.eof:
                piece = inflater.decompress(pending, _INFLATE_STEP)
                pending = inflater.unconsumed_tail
                if stride and max(piece[(-produced) % stride :: stride], default=0) > 4:
                    raise SyntaxError("PNG row uses an unknown filter type")
                produced += len(piece)
                if produced > expected:
                    raise SyntaxError("PNG pixel data is longer than its header declares")
        if not inflater.eof or produced != expected:
            raise SyntaxError(f"PNG pixel data is cut short ({produced} of {expected} bytes)")

    def can_pass_through(self) -> bool:
        """An 8-bit, non-interlaced RGB PNG with no metadata chunks and nothing after IEND."""
        return (
            (self.bit_depth, self.colour_type, self.interlace) == (8, 2, 0)
            and self.chunks[-1:] == (b"IEND",)
            and set(self.chunks) <= _PASSTHROUGH_CHUNKS
        )
