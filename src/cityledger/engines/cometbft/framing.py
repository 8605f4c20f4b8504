"""ABCI socket framing: each protobuf message is preceded by its length as an unsigned varint.

CometBFT 0.38 writes and reads messages with libs/protoio (binary.PutUvarint / ReadUvarint, see
abci/types/messages.go WriteMessage/ReadMessage). Older Tendermint (<= 0.34) used a signed zigzag
varint instead; the two differ, so this must stay unsigned.
"""

from __future__ import annotations

MAX_VARINT_BYTES = 10  # a uint64 needs at most 10 groups of 7 bits
# The largest request CometBFT sends is a PrepareProposal or FinalizeBlock holding a block's txs,
# bounded by the consensus parameter block.max_bytes (the genesis default, 21 MiB, which every
# cityledger genesis keeps), plus its commit info. A longer length prefix can only be a protocol
# error or an attack on memory (a connection buffers at most one partial frame), and is refused.
MAX_FRAME_BYTES = 32 * 1024 * 1024


class FramingError(Exception):
    """The peer sent bytes that are not a valid frame: the connection must be closed."""


_ONE_BYTE_VARINTS = tuple(bytes((value,)) for value in range(0x80))


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative int as a protobuf/Go unsigned varint."""
    if 0 <= value < 0x80:  # the common cases first: this runs several times per transaction
        return _ONE_BYTE_VARINTS[value]
    if 0x80 <= value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:
        raise ValueError(f"uvarint: negative value {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def compute_frame(message: bytes) -> bytes:
    """Prefix a serialised message with its uvarint length."""
    return encode_uvarint(len(message)) + message


def decode_uvarint(buffer: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """Decode a uvarint at pos: (value, next pos), or None if the buffer ends inside it."""
    value = 0
    shift = 0
    end = min(len(buffer), pos + MAX_VARINT_BYTES)
    for i in range(pos, end):
        byte = buffer[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    if end - pos >= MAX_VARINT_BYTES:
        raise FramingError("uvarint: length prefix longer than 10 bytes")
    return None


def split_frames(buffer: bytearray, max_frames: int) -> list[bytes]:
    """Remove and return the complete frames at the start of buffer (at most max_frames)."""
    frames: list[bytes] = []
    pos = 0
    size = len(buffer)
    with memoryview(buffer) as view:  # one copy per frame; released before the buffer shrinks
        while len(frames) < max_frames and pos < size:
            first = buffer[pos]
            if first < 0x80:  # frames under 128 bytes: Flush, Commit, ...
                length, start = first, pos + 1
            elif pos + 1 < size and buffer[pos + 1] < 0x80:  # under 16 KiB: CheckTx
                length, start = (first & 0x7F) | (buffer[pos + 1] << 7), pos + 2
            else:
                header = decode_uvarint(buffer, pos)
                if header is None:
                    break
                length, start = header
                if length > MAX_FRAME_BYTES:
                    raise FramingError(f"frame of {length} bytes exceeds MAX_FRAME_BYTES={MAX_FRAME_BYTES}")
            end = start + length
            if end > size:
                break
            frames.append(view[start:end].tobytes())
            pos = end
    del buffer[:pos]
    return frames
