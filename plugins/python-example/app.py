# app.py: an example strata codec written in Python, built into a WebAssembly component with
# componentize-py against wit/strata.wit (world `codec`). It proves the plugin contract is
# language-neutral: strata loads it like any Rust codec (`strata plugin test`, a policy naming
# the .wasm file).
#
# The format ("python-zlib", files `*.pyzlib`), version 1, all integers little-endian:
#
#   header (16 bytes, not compressed)
#     magic      4 bytes  b"SPZ1"
#     raw_len    u32      length of the payload once inflated
#     n_rows     u32
#     crc32      u32      CRC-32 of the inflated payload
#   zlib stream  -> payload:
#     n_coins u32, then per coin: u32 byte length + UTF-8 bytes
#     coin_index  n_rows x u32
#     ts          n_rows x i64
#     price, market_cap, volume, supply   n_rows x f64 each (raw IEEE bits, so -0.0, ±inf,
#                                         subnormals and the canonical NaN survive bit for bit)
#     rank        n_rows x u32
#     n_extra u32, then per extra column: u32 byte length + UTF-8 name, n_rows x f64
#
# Rows are stored in input order (sorts-rows = false); the coin filter is left to the host
# (filter-pushdown = false). Everything is Python's standard library: `array` for the packed
# columns, `zlib` for compression. Nothing here reads the clock (strata's plugins have none).

import sys
import zlib
from array import array

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import tier_codec
from wit_world.imports import types

NAME = "python-zlib"
VERSION = "0.1.0"
MAGIC = b"SPZ1"
HEADER = 16
DEFAULT_LEVEL = 6
# The largest payload decode inflates. A header may claim anything, so decode refuses more than
# this rather than letting a hostile segment run the plugin out of memory.
MAX_RAW = 512 << 20

_BIG_ENDIAN = sys.byteorder == "big"  # wasm32 is little-endian; kept for a native test run


def _packed(code, values):
    a = array(code, values)
    if _BIG_ENDIAN:
        a.byteswap()
    return a.tobytes()


def _u32(n):
    return n.to_bytes(4, "little")


class _Corrupt(Exception):
    pass


class _Reader:
    """Reads the payload front to back, refusing to run past its end."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise _Corrupt(f"payload ends at byte {len(self.buf)}, needed {end}")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def u32(self):
        return int.from_bytes(self.take(4), "little")

    def text(self, what):
        raw = self.take(self.u32())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Corrupt(f"{what} is not UTF-8")

    def column(self, code, width, n):
        a = array(code)
        a.frombytes(self.take(width * n))
        if _BIG_ENDIAN:
            a.byteswap()
        return a.tolist()


def _level(opts):
    level = DEFAULT_LEVEL
    for key, value in opts:
        if key != "level":
            raise Err(types.Error_InvalidOptions(f"unknown option `{key}` (this codec knows `level`)"))
        try:
            level = int(value.strip())
        except ValueError:
            level = -1
        if not 0 <= level <= 9:
            raise Err(types.Error_InvalidOptions(f"option `level` must be an integer 0..=9, got {value!r}"))
    return level


def _encode(data, level):
    n = len(data.ts)
    parts = [_u32(len(data.coins))]
    for coin in data.coins:
        b = coin.encode("utf-8")
        parts += [_u32(len(b)), b]
    parts.append(_packed("I", data.coin_index))
    parts.append(_packed("q", data.ts))
    for col in (data.price, data.market_cap, data.volume, data.supply):
        parts.append(_packed("d", col))
    parts.append(_packed("I", data.rank))
    parts.append(_u32(len(data.extra)))
    for col in data.extra:
        b = col.name.encode("utf-8")
        parts += [_u32(len(b)), b, _packed("d", col.values)]
    payload = b"".join(parts)
    if len(payload) > MAX_RAW:
        raise Err(types.Error_Unsupported(f"a segment of {len(payload)} bytes is more than this codec stores ({MAX_RAW})"))
    header = MAGIC + _u32(len(payload)) + _u32(n) + _u32(zlib.crc32(payload))
    return header + zlib.compress(payload, level)


def _decode(raw):
    if len(raw) < HEADER or raw[:4] != MAGIC:
        raise _Corrupt("not a python-zlib segment (bad magic or shorter than its header)")
    raw_len = int.from_bytes(raw[4:8], "little")
    n = int.from_bytes(raw[8:12], "little")
    crc = int.from_bytes(raw[12:16], "little")
    if raw_len > MAX_RAW:
        raise _Corrupt(f"header claims {raw_len} bytes of payload, more than {MAX_RAW}")
    try:
        z = zlib.decompressobj()
        payload = z.decompress(raw[HEADER:], raw_len + 1)
    except zlib.error as e:
        raise _Corrupt(f"zlib: {e}")
    if len(payload) != raw_len or not z.eof or z.unused_data or z.unconsumed_tail:
        raise _Corrupt(f"payload is {len(payload)} bytes or runs on, header says {raw_len}")
    if zlib.crc32(payload) != crc:
        raise _Corrupt("CRC-32 of the payload does not match")
    # Every row takes at least 48 bytes, so a row count the payload cannot hold is refused
    # before any column is allocated.
    if n * 48 > raw_len:
        raise _Corrupt(f"{n} rows cannot fit in {raw_len} bytes")
    r = _Reader(payload)
    n_coins = r.u32()
    if n_coins * 4 > raw_len:
        raise _Corrupt(f"{n_coins} coins cannot fit in {raw_len} bytes")
    coins = [r.text("a coin id") for _ in range(n_coins)]
    if len(set(coins)) != len(coins):
        raise _Corrupt("duplicate coin ids")
    coin_index = r.column("I", 4, n)
    if coin_index and max(coin_index) >= n_coins:
        raise _Corrupt("a row refers to a coin that is not in the dictionary")
    ts = r.column("q", 8, n)
    price, market_cap, volume, supply = (r.column("d", 8, n) for _ in range(4))
    rank = r.column("I", 4, n)
    n_extra = r.u32()
    if n_extra * 4 > raw_len:
        raise _Corrupt(f"{n_extra} extra columns cannot fit in {raw_len} bytes")
    extra = []
    for _ in range(n_extra):
        name = r.text("an extra column's name")
        extra.append(types.Column(name=name, values=r.column("d", 8, n)))
    if len({c.name for c in extra}) != len(extra):
        raise _Corrupt("duplicate extra column names")
    if r.pos != len(payload):
        raise _Corrupt(f"{len(payload) - r.pos} bytes left over after the last column")
    return types.Batch(
        coins=coins,
        coin_index=coin_index,
        ts=ts,
        price=price,
        market_cap=market_cap,
        volume=volume,
        supply=supply,
        rank=rank,
        extra=extra,
    )


class TierCodec(exports.TierCodec):
    def describe(self) -> tier_codec.CodecInfo:
        return tier_codec.CodecInfo(
            info=types.PluginInfo(
                name=NAME,
                version=VERSION,
                description="example codec in Python (componentize-py): little-endian packed "
                "columns in input order, zlib-compressed, CRC-32 checked; bit-exact",
                options=[
                    types.OptionSpec(
                        name="level",
                        kind="integer 0..=9",
                        default_value=str(DEFAULT_LEVEL),
                        description="zlib compression level (0 stores, 9 is smallest and slowest)",
                    )
                ],
            ),
            extension="pyzlib",
            media_type="application/vnd.strata.python-zlib",
            lossless=True,
            sorts_rows=False,
            filter_pushdown=False,
            extra_columns=True,
        )

    def encode(self, data: types.Batch, opts) -> bytes:
        level = _level(opts)
        try:
            return _encode(data, level)
        except Err:
            raise
        except Exception as e:  # a bug here must be an `internal` error, not a trap
            raise Err(types.Error_Internal(f"{type(e).__name__}: {e}"))

    def decode(self, bytes, coins) -> types.Batch:
        try:
            return _decode(bytes)
        except _Corrupt as e:
            raise Err(types.Error_CorruptInput(str(e)))
        except MemoryError:
            raise Err(types.Error_CorruptInput("segment too large to decode"))
        except Exception as e:
            raise Err(types.Error_Internal(f"{type(e).__name__}: {e}"))
