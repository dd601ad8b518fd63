"""Hostile GGUF headers: read_gguf either returns or raises GGUFError, and does so quickly.

Valid headers from tests/gguf_bytes.py are mutated (flipped bytes, huge counts and lengths,
wrong types, bad offsets and alignments, truncation at every byte, broken split sets). Any
other exception, or a call taking a second, fails the test: every count in the file is
checked against the bytes left before the reader allocates or loops.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import gguf_bytes as gb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmfit.engine.gguf import GGUFFile, SkippedArray, ValueType, read_gguf, write_stub
from pytest_llmfit.errors import GGUFError

FAST = settings(
    max_examples=120,
    database=None,  # no .hypothesis folder in the work tree
    deadline=None,  # timed below, generously, so a loaded CI machine does not flake
    suppress_health_check=[HealthCheck.too_slow],
)

HOSTILE_U64 = st.sampled_from(
    [
        0,
        1,
        7,
        8,
        31,
        32,
        33,
        63,
        64,
        255,
        4096,
        2**31,
        2**32 - 1,
        2**32,
        2**62,
        2**63 - 1,
        2**63,
        2**64 - 2,
        2**64 - 1,
    ]
) | st.integers(0, 2**64 - 1)
HOSTILE_U32 = st.sampled_from([0, 1, 4, 5, 8, 9, 12, 13, 39, 43, 255, 2**31, 2**32 - 1]) | (
    st.integers(0, 2**32 - 1)
)


def _nested_model() -> gb.Built:
    nested = (
        gb.u32(gb.ARRAY)
        + gb.u64(2)
        + gb.array(gb.INT16, [1, -1])
        + gb.array(gb.STRING, ["p", "qq"])
    )
    return gb.build(
        [
            gb.kv("general.architecture", gb.STRING, "llama"),
            gb.kv_raw("x.nested", gb.ARRAY, nested),
            gb.kv("x.bools", gb.ARRAY, (gb.BOOL, [True, False])),
            gb.kv("x.f64", gb.FLOAT64, 2.5),
            gb.kv("general.alignment", gb.UINT32, 16),
        ],
        [gb.Tensor("a", (32, 2), gb.Q4_0), gb.Tensor("b", (3,), gb.F32), gb.Tensor("c", ())],
        alignment=16,
    )


BASES = {
    "small": gb.small_model(),
    "aligned": gb.small_model(alignment=128, version=2),
    "stub": gb.small_model(with_data=False),
    "nested": _nested_model(),
}
BASE_NAMES = sorted(BASES)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def read_bounded(path: Path) -> GGUFFile | None:
    """The property: a GGUFFile or a one-line GGUFError, in well under a second."""
    start = time.perf_counter()
    try:
        model = read_gguf(path)
    except GGUFError as error:
        assert "\n" not in str(error)
        assert error.offset is None or error.offset >= 0
        model = None
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"read_gguf took {elapsed:.2f} s"
    if model is not None:
        check_invariants(model)
    return model


def check_invariants(model: GGUFFile) -> None:
    assert model.alignment > 0 and model.alignment & (model.alignment - 1) == 0
    if any(t.shard == 0 for t in model.tensors):  # no tensors, no padding (as in gguf.cpp)
        assert model.data_offset % model.alignment == 0
    if model.header_only:
        assert model.tensors
    names = [t.name for t in model.tensors]
    assert len(names) == len(set(names))
    for info in model.tensors:
        assert len(info.shape) <= 4
        assert all(d >= 0 for d in info.shape)
        assert info.ggml_type is not None
        assert info.offset % model.alignment == 0
        assert info.nbytes >= 0


def mutate(data: bytes, pos: int, patch: bytes) -> bytes:
    pos = min(pos, len(data))
    return data[:pos] + patch + data[pos + len(patch) :]


# -- truncation -------------------------------------------------------------------------------


def cut_points(built: gb.Built) -> Iterator[int]:
    yield from range(built.data_offset + 65)  # every byte of the header and a bit beyond
    yield from range(built.data_offset + 65, len(built.data) + 1, 61)
    yield len(built.data)


@pytest.mark.parametrize("name", BASE_NAMES)
def test_truncation_at_every_byte(scratch: Path, name: str) -> None:
    built = BASES[name]
    path = scratch / f"cut-{name}.gguf"
    last = max(cut_points(built))
    for cut in cut_points(built):
        path.write_bytes(built.data[:cut])
        model = read_bounded(path)
        if cut < built.table_end:
            assert model is None, cut
        elif cut <= built.data_offset:
            assert model is not None and model.header_only, cut
        elif cut == last:
            assert model is not None and model.header_only == (name == "stub"), cut


# -- single-field mutations -------------------------------------------------------------------


@FAST
@given(name=st.sampled_from(BASE_NAMES), pos=st.integers(0, 2**16), xor=st.integers(1, 255))
def test_flipped_byte(scratch: Path, name: str, pos: int, xor: int) -> None:
    data = BASES[name].data
    pos %= BASES[name].data_offset
    path = scratch / "flip.gguf"
    path.write_bytes(data[:pos] + bytes([data[pos] ^ xor]) + data[pos + 1 :])
    read_bounded(path)


@FAST
@given(name=st.sampled_from(BASE_NAMES), pos=st.integers(0, 2**16), value=HOSTILE_U64)
def test_hostile_u64_anywhere(scratch: Path, name: str, pos: int, value: int) -> None:
    built = BASES[name]
    path = scratch / "u64.gguf"
    path.write_bytes(mutate(built.data, pos % built.data_offset, struct.pack("<Q", value)))
    read_bounded(path)


def field_starts(built: gb.Built) -> list[int]:
    """Offsets of the length, count and type fields a hostile file would lie in."""
    starts = [4, 8, 16]
    for kv_start in built.kv_starts:
        (key_len,) = struct.unpack_from("<Q", built.data, kv_start)
        starts += [kv_start, kv_start + 8 + key_len, kv_start + 12 + key_len]
        starts.append(kv_start + 16 + key_len)  # array length, or inside a value
    for t_start in built.tensor_starts:
        (name_len,) = struct.unpack_from("<Q", built.data, t_start)
        n_dims_at = t_start + 8 + name_len
        (n_dims,) = struct.unpack_from("<I", built.data, n_dims_at)
        starts += [t_start, n_dims_at]
        starts += [n_dims_at + 4 + 8 * i for i in range(n_dims)]
        starts += [n_dims_at + 4 + 8 * n_dims, n_dims_at + 8 + 8 * n_dims]
    return starts


@FAST
@given(
    name=st.sampled_from(BASE_NAMES),
    which=st.integers(0, 1000),
    value=HOSTILE_U64,
    width=st.sampled_from([4, 8]),
)
def test_hostile_value_in_a_field(
    scratch: Path, name: str, which: int, value: int, width: int
) -> None:
    built = BASES[name]
    starts = field_starts(built)
    pos = starts[which % len(starts)]
    patch = struct.pack("<Q", value)[:width]
    path = scratch / "field.gguf"
    path.write_bytes(mutate(built.data, pos, patch))
    read_bounded(path)


@FAST
@given(
    name=st.sampled_from(BASE_NAMES),
    pos=st.integers(0, 2**16),
    junk=st.binary(min_size=1, max_size=64),
    mode=st.sampled_from(["replace", "insert", "delete"]),
)
def test_spliced_bytes(scratch: Path, name: str, pos: int, junk: bytes, mode: str) -> None:
    built = BASES[name]
    data = built.data
    pos %= built.data_offset
    if mode == "replace":
        data = mutate(data, pos, junk)
    elif mode == "insert":
        data = data[:pos] + junk + data[pos:]
    else:
        data = data[:pos] + data[pos + len(junk) :]
    path = scratch / "splice.gguf"
    path.write_bytes(data)
    read_bounded(path)


@FAST
@given(version=st.sampled_from([2, 3]) | HOSTILE_U32, rest=st.binary(max_size=400))
def test_random_bytes_after_the_magic(scratch: Path, version: int, rest: bytes) -> None:
    path = scratch / "random.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", version) + rest)
    read_bounded(path)


@FAST
@given(
    counts=st.tuples(HOSTILE_U64, HOSTILE_U64),
    body=st.binary(max_size=200),
)
def test_hostile_counts(scratch: Path, counts: tuple[int, int], body: bytes) -> None:
    path = scratch / "counts.gguf"
    path.write_bytes(gb.header(*counts) + body)
    model = read_bounded(path)
    if model is not None:
        assert len(model.tensors) == counts[0]


@FAST
@given(
    vtype=HOSTILE_U32,
    item_type=HOSTILE_U32,
    length=HOSTILE_U64,
    tail=st.binary(max_size=64),
)
def test_hostile_arrays(
    scratch: Path, vtype: int, item_type: int, length: int, tail: bytes
) -> None:
    entry = gb.kv_raw("x.a", vtype, gb.u32(item_type) + gb.u64(length) + tail)
    built = gb.build([entry, gb.kv("x.after", gb.UINT8, 1)], [gb.Tensor("w", (32,))])
    path = scratch / "arrays.gguf"
    path.write_bytes(built.data)
    read_bounded(path)


@FAST
@given(
    shape=st.lists(st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 1, 32, 256]), max_size=6),
    n_dims=st.none() | HOSTILE_U32,
    type_id=HOSTILE_U32 | st.sampled_from([gb.F32, gb.Q4_K, gb.Q6_K]),
    offset=HOSTILE_U64 | st.just(0),
)
def test_hostile_tensor_info(
    scratch: Path, shape: list[int], n_dims: int | None, type_id: int, offset: int
) -> None:
    info = gb.tensor_info("w", shape, type_id, offset, n_dims=n_dims)
    data = gb.header(1, 0) + info
    path = scratch / "tensor.gguf"
    path.write_bytes(data + bytes(-len(data) % 32) + bytes(256))
    read_bounded(path)


@FAST
@given(alignment=HOSTILE_U64, vtype=st.sampled_from([gb.UINT32, gb.UINT64, gb.INT32, gb.UINT8]))
def test_hostile_alignment(scratch: Path, alignment: int, vtype: int) -> None:
    code = gb.CODES[vtype]
    value = alignment % (1 << (8 * struct.calcsize(code)))
    if vtype == gb.INT32:
        value = struct.unpack("<i", struct.pack("<I", alignment % 2**32))[0]
    entry = gb.kv_raw("general.alignment", vtype, struct.pack("<" + code, value))
    built = gb.build([entry], [gb.Tensor("w", (32,))], alignment=32)
    path = scratch / "align.gguf"
    path.write_bytes(built.data)
    model = read_bounded(path)
    valid = vtype == gb.UINT32 and value > 0 and value & (value - 1) == 0
    if not valid:
        assert model is None


# -- split sets -------------------------------------------------------------------------------


def shard(no: int, count: int, total: int, *, label: int) -> bytes:
    kvs = [
        gb.kv("split.no", gb.UINT16, no),
        gb.kv("split.count", gb.UINT16, count),
        gb.kv("split.tensors.count", gb.INT32, total),
    ]
    tensors = [gb.Tensor(f"blk.{label}.a", (32, 2)), gb.Tensor(f"blk.{label}.b", (64,), gb.F16)]
    return gb.build(kvs, tensors).data


@settings(FAST, max_examples=60)
@given(
    count=st.integers(2, 4),
    data=st.data(),
    fault=st.sampled_from(["none", "missing", "count", "no", "total", "duplicate", "garbage"]),
)
def test_split_sets(scratch: Path, count: int, data: st.DataObject, fault: str) -> None:
    folder = scratch / f"split-{time.perf_counter_ns()}"
    folder.mkdir()
    victim = data.draw(st.integers(0, count - 1), label="victim")
    given_index = data.draw(st.integers(0, count - 1), label="given")
    paths = [folder / f"m-{i + 1:05d}-of-{count:05d}.gguf" for i in range(count)]
    victim_claims = count
    for i, path in enumerate(paths):
        no, claimed, total, label = i, count, 2 * count, i
        if i == victim:
            if fault == "missing":
                continue
            if fault == "count":
                claimed = data.draw(st.integers(0, 9).filter(lambda c: c != count), label="c")
                victim_claims = claimed
            if fault == "no":
                no = data.draw(st.integers(0, 9).filter(lambda n, i=i: n != i), label="no")
            if fault == "duplicate":
                label = (i + 1) % count
            if fault == "garbage":
                path.write_bytes(data.draw(st.binary(max_size=100), label="garbage"))
                continue
        if fault == "total":
            total += 1
        path.write_bytes(shard(no, claimed, total, label=label))
    model = read_bounded(paths[given_index])
    if fault == "none":
        assert model is not None
        assert model.shards == tuple(str(p) for p in paths)
        assert [t.shard for t in model.tensors] == [i for i in range(count) for _ in range(2)]
    elif fault == "count" and given_index == victim and victim_claims < 2:
        pass  # the given file then claims to be a whole model: either outcome is fine
    else:
        assert model is None


# -- differential: llama.cpp's own reader -----------------------------------------------------


class LlamaCppGGUF:
    """gguf_init_from_file from the libggml-base that llama-cpp-python ships, via ctypes."""

    def __init__(self, library: str) -> None:
        import ctypes

        class Params(ctypes.Structure):
            _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

        self.params = Params(True, None)
        lib = ctypes.CDLL(library)
        lib.gguf_init_from_file.restype = ctypes.c_void_p
        lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, Params]
        lib.gguf_free.argtypes = [ctypes.c_void_p]
        lib.gguf_get_data_offset.restype = ctypes.c_size_t
        lib.gguf_get_data_offset.argtypes = [ctypes.c_void_p]
        lib.gguf_get_n_tensors.restype = ctypes.c_int64
        lib.gguf_get_n_tensors.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def read(self, path: Path) -> tuple[int, int] | None:
        """(n_tensors, data offset), or None where llama.cpp refuses the file."""
        ctx = self.lib.gguf_init_from_file(os.fsencode(path), self.params)
        if not ctx:
            return None
        try:
            return self.lib.gguf_get_n_tensors(ctx), self.lib.gguf_get_data_offset(ctx)
        finally:
            self.lib.gguf_free(ctx)


@pytest.fixture(scope="module")
def llama_cpp_gguf() -> LlamaCppGGUF:
    spec = importlib.util.find_spec("llama_cpp")  # located, not imported
    if spec is None or spec.origin is None:
        pytest.skip("llama-cpp-python is not installed")
    folder = Path(spec.origin).parent / "lib"
    libraries = sorted(folder.glob("libggml-base.*")) + sorted(folder.glob("ggml-base.dll"))
    if not libraries:
        pytest.skip(f"no libggml-base in {folder}")
    return LlamaCppGGUF(str(libraries[0]))


def has_nested_array(model: GGUFFile) -> bool:
    for value in model.metadata.values():
        if isinstance(value, SkippedArray) and value.item_type == ValueType.ARRAY:
            return True
        if isinstance(value, tuple) and any(isinstance(v, (tuple, SkippedArray)) for v in value):
            return True
    return False


@settings(FAST, max_examples=300)
@given(
    name=st.sampled_from([n for n in BASE_NAMES if n != "nested"]),
    mode=st.sampled_from(["flip", "u64", "field", "cut"]),
    pos=st.integers(0, 2**16),
    value=HOSTILE_U64,
    width=st.sampled_from([1, 4, 8]),
)
def test_agrees_with_llama_cpp(
    scratch: Path,
    llama_cpp_gguf: LlamaCppGGUF,
    name: str,
    mode: str,
    pos: int,
    value: int,
    width: int,
) -> None:
    """Accepts what gguf.cpp accepts and refuses what it refuses, bar the documented extras.

    Extras: a stub ending before its data section is accepted (gguf.cpp cannot seek there),
    nested arrays are accepted (gguf.cpp refuses them), and data missing from the file or
    a broken split set is refused (gguf.cpp does not look at the data or at other files).
    """
    built = BASES[name]
    data = built.data
    if mode == "flip":
        at = pos % built.data_offset
        data = data[:at] + bytes([data[at] ^ (value % 255 + 1)]) + data[at + 1 :]
    elif mode == "u64":
        data = mutate(data, pos % built.data_offset, struct.pack("<Q", value)[:width])
    elif mode == "field":
        starts = field_starts(built)
        data = mutate(data, starts[pos % len(starts)], struct.pack("<Q", value)[:width])
    else:
        data = data[: pos % (len(data) + 1)]
    path = scratch / "differential.gguf"
    path.write_bytes(data)
    theirs = llama_cpp_gguf.read(path)
    try:
        ours: GGUFFile | None = read_gguf(path)
        reason = ""
    except GGUFError as error:
        ours, reason = None, error.reason
    if ours is None:
        if theirs is not None:
            assert "data section truncated" in reason or "split" in reason, reason
    elif theirs is None:
        assert ours.header_only or has_nested_array(ours)
    elif len(ours.shards) == 1:
        assert (len(ours.tensors), ours.data_offset) == theirs


@pytest.mark.parametrize("name", BASE_NAMES)
def test_stubs_are_accepted_by_llama_cpp(
    scratch: Path, llama_cpp_gguf: LlamaCppGGUF, name: str
) -> None:
    source = scratch / f"source-{name}.gguf"
    source.write_bytes(BASES[name].data)
    stub = scratch / f"stub-{name}.gguf"
    write_stub(source, stub)
    model = read_gguf(stub)
    theirs = llama_cpp_gguf.read(stub)
    if name == "nested":
        assert theirs is None  # gguf.cpp refuses nested arrays; this reader keeps them
    else:
        assert theirs == (len(model.tensors), model.data_offset)
