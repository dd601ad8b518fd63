"""pytest_llmfit.engine.gguf: the header reader, split models and stubs.

Hand-built bytes (tests/gguf_bytes.py) pin the format and every rejection; files written by
the ``gguf`` package's GGUFWriter are compared with its own GGUFReader.
"""

from __future__ import annotations

import ast
import os
import struct
import sys
from pathlib import Path
from typing import Any

import gguf_bytes as gb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:  # the gguf package (and numpy) write and read reference files; optional
    import gguf
    import numpy as np
except ImportError:  # pragma: no cover - the dev extra installs them
    gguf = np = None

from pytest_llmfit.engine.gguf import (
    MAX_MATERIALISED,
    GGUFFile,
    SkippedArray,
    TensorInfo,
    ValueType,
    read_gguf,
    split_shard_paths,
    write_stub,
)
from pytest_llmfit.engine.gguf import strings as gguf_strings
from pytest_llmfit.errors import GGUFError


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def rejects(path: Path, *fragments: str) -> GGUFError:
    """read_gguf(path) raises a one-line GGUFError naming the file and all ``fragments``."""
    with pytest.raises(GGUFError) as info:
        read_gguf(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, message
    return info.value


# -- a valid hand-built file -----------------------------------------------------------------


def test_small_model_reads_back(tmp_path: Path) -> None:
    built = gb.small_model()
    model = read_gguf(write(tmp_path / "m.gguf", built.data))
    assert isinstance(model, GGUFFile)
    assert model.version == 3
    assert model.alignment == 32
    assert model.architecture == "llama"
    assert model.arch_value("block_count") == 1
    assert model.metadata["tokenizer.ggml.tokens"] == SkippedArray(ValueType.STRING, 5)
    assert model.metadata["tokenizer.ggml.scores"] == (0.0, 0.5, -1.0, 2.0, 3.0)
    assert model.metadata["tokenizer.ggml.token_type"] == (3, 3, 1, 1, 1)
    assert model.vocab_size == 5
    assert model.data_offset == built.data_offset
    assert model.file_size == len(built.data)
    assert model.shards == (str(tmp_path / "m.gguf"),)
    assert not model.header_only
    assert [t.name for t in model.tensors] == [
        "token_embd.weight",
        "blk.0.attn_norm.weight",
        "blk.0.attn_q.weight",
        "output_norm.weight",
        "output.weight",
    ]
    assert [t.offset for t in model.tensors] == built.offsets
    q = model.tensor("blk.0.attn_q.weight")
    assert q == TensorInfo("blk.0.attn_q.weight", (64, 64), gb.Q8_0, built.offsets[2], 0)
    assert q.nbytes == 64 * 64 // 32 * 34
    assert model.tensor("nope") is None
    assert model.weights_bytes == sum(gb.nbytes(t.shape, t.type_id) for t in model.tensors)


def test_accepts_pathlike_and_str(tmp_path: Path) -> None:
    path = write(tmp_path / "m.gguf", gb.small_model().data)
    assert read_gguf(str(path)).tensors == read_gguf(path).tensors


def test_version_2_has_the_same_layout(tmp_path: Path) -> None:
    # v2 and v3 differ only in that v3 may be big-endian: both use u64 counts and lengths
    model = read_gguf(write(tmp_path / "v2.gguf", gb.small_model(version=2).data))
    assert model.version == 2
    assert len(model.tensors) == 5


@pytest.mark.parametrize(
    ("vtype", "value"),
    [
        (gb.UINT8, 255),
        (gb.INT8, -128),
        (gb.UINT16, 65535),
        (gb.INT16, -32768),
        (gb.UINT32, 2**32 - 1),
        (gb.INT32, -(2**31)),
        (gb.FLOAT32, 1.5),
        (gb.BOOL, True),
        (gb.BOOL, False),
        (gb.STRING, "héllo wörld"),
        (gb.UINT64, 2**64 - 1),
        (gb.INT64, -(2**63)),
        (gb.FLOAT64, -2.25),
    ],
)
def test_every_scalar_type(tmp_path: Path, vtype: int, value: object) -> None:
    built = gb.build([gb.kv("x.value", vtype, value)])
    model = read_gguf(write(tmp_path / "s.gguf", built.data))
    got = model.metadata["x.value"]
    assert got == value
    assert type(got) is type(value)


def test_bool_is_any_nonzero_byte(tmp_path: Path) -> None:
    built = gb.build([gb.kv_raw("x.b", gb.BOOL, b"\x07")])
    assert read_gguf(write(tmp_path / "b.gguf", built.data)).metadata["x.b"] is True


def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    built = gb.build([gb.kv("x.s", gb.STRING, b"ok\xff\xfe")])
    assert read_gguf(write(tmp_path / "u.gguf", built.data)).metadata["x.s"] == "ok\ufffd\ufffd"


@pytest.mark.parametrize("item_type", sorted(gb.CODES))
def test_numeric_arrays_of_every_type(tmp_path: Path, item_type: int) -> None:
    items: list[Any] = {
        gb.FLOAT32: [0.5, -1.0],
        gb.FLOAT64: [0.5, -1.0],
        gb.BOOL: [True, False],
    }.get(item_type, [1, 2, 3])
    built = gb.build([gb.kv("x.a", gb.ARRAY, (item_type, items))])
    got = read_gguf(write(tmp_path / "a.gguf", built.data)).metadata["x.a"]
    assert got == tuple(items)


def test_array_length_threshold(tmp_path: Path) -> None:
    keep = list(range(MAX_MATERIALISED))
    skip = list(range(MAX_MATERIALISED + 1))
    built = gb.build(
        [
            gb.kv("x.keep", gb.ARRAY, (gb.UINT16, [i % 65536 for i in keep])),
            gb.kv("x.skip", gb.ARRAY, (gb.INT32, skip)),
            gb.kv("x.empty", gb.ARRAY, (gb.UINT8, [])),
            gb.kv("x.after", gb.STRING, "still read"),
        ]
    )
    meta = read_gguf(write(tmp_path / "a.gguf", built.data)).metadata
    assert isinstance(meta["x.keep"], tuple)
    assert len(meta["x.keep"]) == MAX_MATERIALISED
    assert meta["x.skip"] == SkippedArray(ValueType.INT32, MAX_MATERIALISED + 1)
    assert meta["x.empty"] == ()
    assert meta["x.after"] == "still read"


def test_string_arrays_are_always_skipped(tmp_path: Path) -> None:
    built = gb.build(
        [
            gb.kv("x.one", gb.ARRAY, (gb.STRING, ["a"])),
            gb.kv("x.none", gb.ARRAY, (gb.STRING, [])),
            gb.kv("x.big", gb.ARRAY, (gb.STRING, ["x" * 300, "", "ü" * 70_000])),
            gb.kv("x.after", gb.UINT8, 7),
        ]
    )
    meta = read_gguf(write(tmp_path / "s.gguf", built.data)).metadata
    assert meta["x.one"] == SkippedArray(ValueType.STRING, 1)
    assert meta["x.none"] == SkippedArray(ValueType.STRING, 0)
    assert meta["x.big"] == SkippedArray(ValueType.STRING, 3)
    assert meta["x.after"] == 7


def test_string_array_larger_than_the_first_read(tmp_path: Path) -> None:
    # more than the reader's first 4 MiB chunk: the buffer must grow mid-array
    tokens = [f"t{i}" * 8 for i in range(300_000)]
    built = gb.build(
        [gb.kv("tokenizer.ggml.tokens", gb.ARRAY, (gb.STRING, tokens)), gb.kv("z", gb.UINT8, 1)],
        [gb.Tensor("w", (32,), gb.F32)],
    )
    assert len(built.data) > 5 << 20
    model = read_gguf(write(tmp_path / "big.gguf", built.data))
    assert model.vocab_size == 300_000
    assert model.metadata["z"] == 1
    assert model.tensors[0].name == "w"


SHORT_LENGTHS = st.lists(st.integers(0, 63), max_size=1300)
LONG_STRINGS = st.lists(
    st.tuples(st.integers(0, 1300), st.sampled_from([64, 100, 255, 256, 261, 1000])), max_size=3
)


def string_lengths(short: list[int], long: list[tuple[int, int]]) -> list[int]:
    lengths = list(short)
    for at, n in long:
        lengths.insert(at, n)
    return lengths


@settings(max_examples=60, deadline=None, database=None)
@given(short=SHORT_LENGTHS, long=LONG_STRINGS, pad=st.integers(0, 7))
def test_string_arrays_of_any_lengths_are_stepped_over_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    short: list[int],
    long: list[tuple[int, int]],
    pad: int,
) -> None:
    # runs of short strings are matched 256 at a time, the rest hop one by one: the key
    # after the array is only found if both step over exactly the right bytes
    strings = [bytes([65 + i % 26]) * n for i, n in enumerate(string_lengths(short, long))]
    built = gb.build(
        [
            gb.kv("x.pad", gb.STRING, "p" * pad),  # shifts the array against 8-byte words
            gb.kv("x.strings", gb.ARRAY, (gb.STRING, strings)),
            gb.kv("x.after", gb.UINT32, 0xC0FFEE),
        ]
    )
    path = tmp_path_factory.mktemp("strings") / "s.gguf"
    meta = read_gguf(write(path, built.data)).metadata
    assert meta["x.strings"] == SkippedArray(ValueType.STRING, len(strings))
    assert meta["x.after"] == 0xC0FFEE


@settings(max_examples=100, deadline=None, database=None)
@given(short=SHORT_LENGTHS, long=LONG_STRINGS, start=st.integers(0, 9))
def test_fast_string_walk_agrees_with_hopping(
    short: list[int], long: list[tuple[int, int]], start: int
) -> None:
    lengths = string_lengths(short, long)
    buf = bytes(start) + b"".join(gb.gstr(b"\xff" * n) for n in lengths) + bytes(3)
    expected = start + sum(8 + n for n in lengths)
    assert gguf_strings.hop_strings(buf, start, len(lengths)) == expected
    assert gguf_strings.walk_strings(buf, start, len(lengths)) == expected


def test_fast_string_walk_matches_runs_of_short_strings() -> None:
    # the fast path must actually match (else a vocabulary walk silently gets 2x slower)
    buf = b"".join(gb.gstr(b"\n" * (i % 64)) for i in range(256))
    found = gguf_strings.short_string_run().match(buf, 0)
    assert found is not None
    assert found.end() == len(buf)
    assert gguf_strings.short_string_run().match(buf[:-1], 0) is None


def test_nested_arrays(tmp_path: Path) -> None:
    inner_a = gb.array(gb.INT32, [1, 2])
    inner_b = gb.array(gb.STRING, ["x", "y", "z"])
    inner_c = gb.u32(gb.ARRAY) + gb.u64(1) + gb.array(gb.UINT8, [9])
    value = gb.u32(gb.ARRAY) + gb.u64(3) + inner_a + inner_b + inner_c
    built = gb.build([gb.kv_raw("x.nested", gb.ARRAY, value), gb.kv("x.after", gb.INT8, -1)])
    meta = read_gguf(write(tmp_path / "n.gguf", built.data)).metadata
    assert meta["x.nested"] == ((1, 2), SkippedArray(ValueType.STRING, 3), ((9,),))
    assert meta["x.after"] == -1


def test_vocab_size_absent(tmp_path: Path) -> None:
    model = read_gguf(write(tmp_path / "v.gguf", gb.build([gb.kv("a", gb.UINT8, 1)]).data))
    assert model.vocab_size is None
    assert model.architecture == "unknown"


def test_no_tensors_no_keys(tmp_path: Path) -> None:
    model = read_gguf(write(tmp_path / "e.gguf", gb.header(0, 0)))
    assert model.tensors == ()
    assert model.data_offset == 24  # gguf.cpp pads to the data section only if it has one
    assert dict(model.metadata) == {}
    assert not model.header_only


def test_zero_dim_tensor_is_one_element(tmp_path: Path) -> None:
    built = gb.build([], [gb.Tensor("scalar", (), gb.F32), gb.Tensor("w", (32, 2), gb.F32)])
    model = read_gguf(write(tmp_path / "z.gguf", built.data))
    scalar = model.tensors[0]
    assert scalar.shape == ()
    assert scalar.n_elements == 1
    assert scalar.nbytes == 4
    assert model.tensors[1].offset == 32


def test_zero_sized_dimension_is_allowed(tmp_path: Path) -> None:
    built = gb.build([], [gb.Tensor("empty", (32, 0), gb.F32), gb.Tensor("w", (32,), gb.F32)])
    model = read_gguf(write(tmp_path / "z.gguf", built.data))
    assert model.tensors[0].nbytes == 0
    assert model.tensors[1].offset == 0


# -- alignment -------------------------------------------------------------------------------


@pytest.mark.parametrize("alignment", [1, 8, 64, 4096])
def test_custom_alignment(tmp_path: Path, alignment: int) -> None:
    built = gb.small_model(alignment=alignment)
    model = read_gguf(write(tmp_path / "a.gguf", built.data))
    assert model.alignment == alignment
    assert model.data_offset == built.data_offset
    assert model.data_offset % alignment == 0
    assert [t.offset for t in model.tensors] == built.offsets


@pytest.mark.parametrize("alignment", [0, 3, 48, 2**32 - 1])
def test_alignment_must_be_a_power_of_two(tmp_path: Path, alignment: int) -> None:
    built = gb.build([gb.kv("general.alignment", gb.UINT32, alignment)])
    rejects(
        write(tmp_path / "a.gguf", built.data), f"general.alignment {alignment}", "power of two"
    )


def test_alignment_must_be_uint32(tmp_path: Path) -> None:
    built = gb.build([gb.kv("general.alignment", gb.UINT64, 64)])
    rejects(write(tmp_path / "a.gguf", built.data), "general.alignment must be a uint32", "uint64")


# -- header rejections ------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    error = rejects(tmp_path / "absent.gguf", "no such file")
    assert error.offset is None


def test_directory(tmp_path: Path) -> None:
    rejects(tmp_path, "is a directory")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads unreadable files"
)
def test_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path / "locked.gguf", gb.small_model().data)
    path.chmod(0)
    try:
        rejects(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_empty_file(tmp_path: Path) -> None:
    rejects(write(tmp_path / "e.gguf", b""), "empty file")


@pytest.mark.parametrize("data", [b"GGML\x03\x00\x00\x00", b"PK\x03\x04rest", b"GG"])
def test_bad_magic(tmp_path: Path, data: bytes) -> None:
    rejects(write(tmp_path / "x.gguf", data), "not a GGUF file")


def test_version_1_is_rejected(tmp_path: Path) -> None:
    # v1 used u32 counts and lengths; llama.cpp no longer reads it
    data = b"GGUF" + struct.pack("<III", 1, 0, 0)
    error = rejects(write(tmp_path / "v1.gguf", data), "version 1 is not supported")
    assert error.offset == 4


@pytest.mark.parametrize("version", [0, 4, 0xFFFF])
def test_unknown_versions(tmp_path: Path, version: int) -> None:
    rejects(write(tmp_path / "v.gguf", gb.header(0, 0, version=version)), f"version {version}")


def test_big_endian_is_detected(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
    rejects(write(tmp_path / "be.gguf", data), "big-endian GGUF not supported")


@pytest.mark.parametrize("cut", [4, 7, 8, 15, 23])
def test_truncated_fixed_header(tmp_path: Path, cut: int) -> None:
    rejects(write(tmp_path / "t.gguf", gb.header(0, 0)[:cut]), "file ends inside the header")


def test_kv_count_beyond_file(tmp_path: Path) -> None:
    rejects(write(tmp_path / "k.gguf", gb.header(0, 2**63)), str(2**63), "metadata entries")


def test_tensor_count_beyond_file(tmp_path: Path) -> None:
    error = rejects(write(tmp_path / "t.gguf", gb.header(10**12, 0)), "1" + "0" * 12 + " tensors")
    assert error.offset == 8


def test_string_length_beyond_file(tmp_path: Path) -> None:
    entry = gb.gstr("x.key") + gb.u32(gb.STRING) + gb.gstr("short", length=2**62)
    built = gb.build([entry])
    rejects(write(tmp_path / "s.gguf", built.data), "claims 4611686018427387904 bytes", "left")


def test_key_length_beyond_file(tmp_path: Path) -> None:
    built = gb.build([gb.gstr("x", length=10**9) + gb.u32(gb.UINT8) + b"\x01"])
    rejects(write(tmp_path / "k.gguf", built.data), "key 0 claims 1000000000 bytes")


def test_array_length_beyond_file(tmp_path: Path) -> None:
    value = gb.array(gb.UINT32, [1, 2], length=2**40)
    built = gb.build([gb.kv_raw("x.a", gb.ARRAY, value)])
    rejects(write(tmp_path / "a.gguf", built.data), "array 'x.a' of 1099511627776 uint32")


def test_string_array_length_beyond_file(tmp_path: Path) -> None:
    value = gb.array(gb.STRING, ["a"], length=2**40)
    rejects(
        write(tmp_path / "a.gguf", gb.build([gb.kv_raw("x.a", gb.ARRAY, value)]).data),
        "1099511627776 strings",
    )


def test_string_in_array_runs_past_the_end(tmp_path: Path) -> None:
    value = gb.u32(gb.STRING) + gb.u64(2) + gb.gstr("ok") + gb.gstr("xy", length=50)
    rejects(
        write(tmp_path / "a.gguf", gb.build([gb.kv_raw("x.a", gb.ARRAY, value)]).data),
        "'x.a'",
        "past the end",
    )


@pytest.mark.parametrize("vtype", [13, 255, 2**32 - 1])
def test_unknown_value_type(tmp_path: Path, vtype: int) -> None:
    built = gb.build([gb.kv_raw("x.bad", vtype, b"\x00" * 8)])
    rejects(write(tmp_path / "v.gguf", built.data), f"unknown value type {vtype}", "'x.bad'")


def test_unknown_array_item_type(tmp_path: Path) -> None:
    value = gb.u32(99) + gb.u64(1) + b"\x00" * 8
    built = gb.build([gb.kv_raw("x.bad", gb.ARRAY, value)])
    rejects(write(tmp_path / "v.gguf", built.data), "unknown item type 99")


def test_arrays_nested_too_deep(tmp_path: Path) -> None:
    value = gb.array(gb.UINT8, [1])
    for _ in range(40):
        value = gb.u32(gb.ARRAY) + gb.u64(1) + value
    built = gb.build([gb.kv_raw("x.deep", gb.ARRAY, value)])
    rejects(write(tmp_path / "d.gguf", built.data), "nests arrays more than")


def test_duplicate_key(tmp_path: Path) -> None:
    built = gb.build([gb.kv("a.b", gb.UINT8, 1), gb.kv("a.b", gb.UINT8, 2)])
    error = rejects(write(tmp_path / "d.gguf", built.data), "duplicate metadata key 'a.b'")
    assert error.offset == built.kv_starts[1]


def test_empty_key(tmp_path: Path) -> None:
    built = gb.build([gb.kv("", gb.UINT8, 1)])
    rejects(write(tmp_path / "e.gguf", built.data), "metadata key 0 is empty")


def test_long_key_is_shortened_in_the_message(tmp_path: Path) -> None:
    key = "k" * 5000 + "\n"
    built = gb.build([gb.kv(key, gb.UINT8, 1), gb.kv(key, gb.UINT8, 1)])
    error = rejects(write(tmp_path / "l.gguf", built.data), "duplicate metadata key")
    assert len(str(error)) < 300


# -- tensor table rejections ------------------------------------------------------------------


def one_tensor(tmp_path: Path, info: bytes, *, pad_to: int = 4096) -> Path:
    data = gb.header(1, 0) + info
    return write(tmp_path / "t.gguf", data + bytes(pad_to - len(data)))


def test_duplicate_tensor_name(tmp_path: Path) -> None:
    built = gb.build([], [gb.Tensor("w", (32,)), gb.Tensor("w", (32,))])
    error = rejects(write(tmp_path / "d.gguf", built.data), "duplicate tensor name 'w'")
    assert error.offset == built.tensor_starts[1]


def test_too_many_dimensions(tmp_path: Path) -> None:
    path = one_tensor(tmp_path, gb.tensor_info("w", (1, 1, 1, 1, 1), gb.F32, 0))
    rejects(path, "'w' has 5 dimensions (at most 4)")


def test_huge_n_dims(tmp_path: Path) -> None:
    path = one_tensor(tmp_path, gb.tensor_info("w", (1,), gb.F32, 0, n_dims=2**32 - 1))
    rejects(path, "4294967295 dimensions")


def test_negative_dimension(tmp_path: Path) -> None:
    rejects(
        one_tensor(tmp_path, gb.tensor_info("w", (32, -2), gb.F32, 0)),
        "'w' dimension 1 is negative (-2)",
    )


def test_two_negative_dimensions(tmp_path: Path) -> None:
    # their product is positive: the sign of each dimension is still checked
    rejects(
        one_tensor(tmp_path, gb.tensor_info("w", (-32, -2), gb.F32, 0)),
        "'w' dimension 0 is negative (-32)",
    )


def test_element_count_overflow(tmp_path: Path) -> None:
    info = gb.tensor_info("w", (2**32, 2**32), gb.F32, 0)
    rejects(one_tensor(tmp_path, info), "more than INT64_MAX elements")


@pytest.mark.parametrize("type_id", [4, 5, 31, 36, 43, 2**31, 2**32 - 1])
def test_unknown_ggml_type(tmp_path: Path, type_id: int) -> None:
    rejects(
        one_tensor(tmp_path, gb.tensor_info("w", (32,), type_id, 0)),
        f"unknown ggml type id {type_id}",
    )


def test_row_not_a_multiple_of_the_block(tmp_path: Path) -> None:
    rejects(
        one_tensor(tmp_path, gb.tensor_info("w", (100, 2), gb.Q4_K, 0)),
        "100 elements per row, not a multiple of its block size 256",
    )


def test_tensor_name_too_long_for_llama_cpp(tmp_path: Path) -> None:
    rejects(
        one_tensor(tmp_path, gb.tensor_info("n" * 64, (32,), gb.F32, 0)),
        "is 64 bytes long; llama.cpp allows at most 63",
    )


def test_tensor_name_of_63_bytes_is_fine(tmp_path: Path) -> None:
    built = gb.build([], [gb.Tensor("n" * 63, (32,))])
    assert read_gguf(write(tmp_path / "n.gguf", built.data)).tensors[0].name == "n" * 63


def test_unaligned_offset(tmp_path: Path) -> None:
    tensors = [gb.Tensor("a", (8,)), gb.Tensor("b", (8,))]
    built = gb.build([], tensors, offsets=[0, 33])
    rejects(write(tmp_path / "o.gguf", built.data), "'b' has data offset 33, expected 32")


def test_out_of_order_offsets(tmp_path: Path) -> None:
    # llama.cpp requires each tensor right after the previous one (padded): so do we
    tensors = [gb.Tensor("a", (8,)), gb.Tensor("b", (8,))]
    built = gb.build([], tensors, offsets=[32, 0])
    rejects(write(tmp_path / "o.gguf", built.data), "'a' has data offset 32, expected 0")


def test_truncated_data_section_names_the_missing_bytes(tmp_path: Path) -> None:
    built = gb.small_model()
    needed = built.data_offset + built.offsets[-1] + 256 // 256 * 210 * 5
    data = built.data[: built.data_offset + 100]
    error = rejects(write(tmp_path / "t.gguf", data), "data section truncated")
    assert f"{needed - len(data)} bytes missing" in str(error)


def test_last_tensor_padding_may_be_absent(tmp_path: Path) -> None:
    built = gb.small_model()
    end = built.data_offset + built.offsets[-1] + 210 * 5
    model = read_gguf(write(tmp_path / "p.gguf", built.data[:end]))
    assert not model.header_only


# -- header-only stubs ------------------------------------------------------------------------


def test_stub_ending_at_the_table(tmp_path: Path) -> None:
    built = gb.small_model()
    model = read_gguf(write(tmp_path / "s.gguf", built.data[: built.table_end]))
    assert model.header_only
    assert model.data_offset == built.data_offset
    assert model.file_size == built.table_end
    assert len(model.tensors) == 5


def test_stub_in_the_padding_and_padded(tmp_path: Path) -> None:
    built = gb.small_model(alignment=4096)
    for end in (built.table_end + 1, built.data_offset - 1, built.data_offset):
        model = read_gguf(write(tmp_path / "s.gguf", built.data[:end]))
        assert model.header_only, end


def test_one_byte_of_data_is_not_a_stub(tmp_path: Path) -> None:
    built = gb.small_model()
    rejects(write(tmp_path / "s.gguf", built.data[: built.data_offset + 1]), "truncated")


def test_file_ending_inside_the_table(tmp_path: Path) -> None:
    built = gb.small_model()
    rejects(write(tmp_path / "s.gguf", built.data[: built.table_end - 1]), "file ends inside")


def test_write_stub(tmp_path: Path) -> None:
    built = gb.small_model(alignment=64)
    src = write(tmp_path / "full.gguf", built.data)
    dst = tmp_path / "stub.gguf"
    written = write_stub(src, dst)
    assert written == built.data_offset == dst.stat().st_size
    assert dst.read_bytes() == built.data[: built.data_offset]
    full, stub = read_gguf(src), read_gguf(dst)
    assert stub.header_only and not full.header_only
    assert stub.metadata == full.metadata
    assert stub.tensors == full.tensors
    assert stub.data_offset == full.data_offset
    # a stub of a stub (ending at the table, unpadded) is padded to the data offset
    short = write(tmp_path / "short.gguf", built.data[: built.table_end])
    assert write_stub(short, tmp_path / "again.gguf") == built.data_offset
    assert read_gguf(tmp_path / "again.gguf").tensors == full.tensors


def test_write_stub_into_a_directory(tmp_path: Path) -> None:
    src = write(tmp_path / "model.gguf", gb.small_model().data)
    out = tmp_path / "stubs"
    out.mkdir()
    write_stub(src, out)
    assert read_gguf(out / "model.gguf").header_only


def test_write_stub_refuses_to_overwrite_its_source(tmp_path: Path) -> None:
    src = write(tmp_path / "model.gguf", gb.small_model().data)
    with pytest.raises(GGUFError, match="own source"):
        write_stub(src, src)
    assert read_gguf(src).header_only is False


def test_write_stub_to_a_missing_folder(tmp_path: Path) -> None:
    src = write(tmp_path / "model.gguf", gb.small_model().data)
    with pytest.raises(GGUFError, match="cannot write stub"):
        write_stub(src, tmp_path / "absent" / "stub.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


@pytest.mark.parametrize(
    "module", sorted(p.name for p in Path(gguf_strings.__file__).parent.glob("*.py"))
)
def test_reader_uses_the_standard_library_only(module: str) -> None:
    tree = ast.parse((Path(gguf_strings.__file__).parent / module).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_write_stub_of_a_bad_file(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="no such file"):
        write_stub(tmp_path / "absent.gguf", tmp_path / "stub.gguf")
    assert not (tmp_path / "stub.gguf").exists()


# -- split models (hand-built) ----------------------------------------------------------------


def shard_bytes(
    no: int,
    count: int,
    tensors: list[gb.Tensor],
    *,
    total: int | None = None,
    extra: list[bytes] | None = None,
    with_data: bool = True,
) -> bytes:
    kvs = [gb.kv("split.no", gb.UINT16, no), gb.kv("split.count", gb.UINT16, count)]
    if total is not None:
        kvs.append(gb.kv("split.tensors.count", gb.INT32, total))
    if no == 0:
        kvs.insert(0, gb.kv("general.architecture", gb.STRING, "llama"))
    kvs += extra or []
    return gb.build(kvs, tensors, with_data=with_data).data


def write_split(
    folder: Path,
    count: int = 3,
    *,
    name: str = "m",
    skip: int | None = None,
    total: int | None = None,
) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"{name}-{i + 1:05d}-of-{count:05d}.gguf"
        paths.append(path)
        if i == skip:
            continue
        tensors = [gb.Tensor(f"blk.{i}.a", (32, 2)), gb.Tensor(f"blk.{i}.b", (64,), gb.F16)]
        path.write_bytes(
            shard_bytes(i, count, tensors, total=2 * count if total is None else total)
        )
    return paths


def test_split_read_from_any_shard(tmp_path: Path) -> None:
    paths = write_split(tmp_path)
    for shard in paths:
        model = read_gguf(shard)
        assert model.path == str(paths[0])
        assert model.shards == tuple(str(p) for p in paths)
        assert model.file_size == sum(p.stat().st_size for p in paths)
        assert model.architecture == "llama"
        assert [(t.name, t.shard) for t in model.tensors] == [
            ("blk.0.a", 0),
            ("blk.0.b", 0),
            ("blk.1.a", 1),
            ("blk.1.b", 1),
            ("blk.2.a", 2),
            ("blk.2.b", 2),
        ]
        assert model.tensors[1].offset == 256  # offsets are per shard
        assert model.tensors[3].offset == 256


def test_split_shard_paths() -> None:
    assert split_shard_paths("d/x-00002-of-00003.gguf") == (
        os.path.join("d", "x-00001-of-00003.gguf"),
        os.path.join("d", "x-00002-of-00003.gguf"),
        os.path.join("d", "x-00003-of-00003.gguf"),
    )
    assert split_shard_paths("x.gguf") is None
    assert split_shard_paths("x-00004-of-00003.gguf") is None
    assert split_shard_paths("x-00000-of-00003.gguf") is None


def test_split_missing_shard(tmp_path: Path) -> None:
    paths = write_split(tmp_path, skip=1)
    with pytest.raises(GGUFError, match="shard 2 of 3 is missing") as info:
        read_gguf(paths[0])
    assert info.value.path == str(paths[1])


def test_split_count_mismatch(tmp_path: Path) -> None:
    paths = write_split(tmp_path)
    tensors = [gb.Tensor("blk.2.a", (32, 2)), gb.Tensor("blk.2.b", (64,), gb.F16)]
    paths[2].write_bytes(shard_bytes(2, 4, tensors, total=6))
    with pytest.raises(GGUFError, match=r"split\.count is 4 but shard 1"):
        read_gguf(paths[0])


def test_split_no_mismatch(tmp_path: Path) -> None:
    paths = write_split(tmp_path)
    tensors = [gb.Tensor("blk.1.a", (32, 2))]
    paths[1].write_bytes(shard_bytes(2, 3, tensors))
    with pytest.raises(GGUFError, match=r"split\.no is 2 but the file name makes it shard 2"):
        read_gguf(paths[0])


def test_split_tensor_count_mismatch(tmp_path: Path) -> None:
    paths = write_split(tmp_path, total=7)
    with pytest.raises(GGUFError, match=r"split\.tensors\.count is 7 but the 3 shards hold 6"):
        read_gguf(paths[1])


def test_split_duplicate_tensor_across_shards(tmp_path: Path) -> None:
    paths = write_split(tmp_path, count=2, total=3)
    paths[1].write_bytes(shard_bytes(1, 2, [gb.Tensor("blk.0.a", (32, 2))]))
    with pytest.raises(GGUFError, match="more than one shard"):
        read_gguf(paths[0])


def test_split_count_with_a_plain_name(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.gguf", shard_bytes(0, 2, [gb.Tensor("w", (32,))]))
    rejects(path, "split.count is 2 but the file name does not follow")


def test_split_name_disagrees_with_split_count(tmp_path: Path) -> None:
    path = write(tmp_path / "m-00001-of-00002.gguf", shard_bytes(0, 3, [gb.Tensor("w", (32,))]))
    rejects(path, "split.count is 3 but the file name says 2 shards")


def test_split_name_without_split_metadata_is_one_file(tmp_path: Path) -> None:
    # like llama.cpp: the name alone does not make a split model
    path = write(tmp_path / "m-00001-of-00002.gguf", gb.small_model().data)
    assert read_gguf(path).shards == (str(path),)


def test_split_of_one_is_one_file(tmp_path: Path) -> None:
    path = write(tmp_path / "m-00001-of-00001.gguf", shard_bytes(0, 1, [gb.Tensor("w", (32,))]))
    assert len(read_gguf(path).shards) == 1


def test_split_count_of_a_wrong_type(tmp_path: Path) -> None:
    data = gb.build([gb.kv("split.count", gb.STRING, "3")]).data
    rejects(write(tmp_path / "m.gguf", data), "split.count must be an integer")


def test_split_stubs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = write_split(src)
    full = read_gguf(paths[0])
    # dst naming the first shard
    out = tmp_path / "out"
    out.mkdir()
    written = write_stub(paths[0], out / "twin-00001-of-00003.gguf")
    stub = read_gguf(out / "twin-00002-of-00003.gguf")
    assert stub.header_only
    assert written == sum(Path(p).stat().st_size for p in stub.shards)
    assert [(t.name, t.shape, t.type_id, t.offset, t.shard) for t in stub.tensors] == [
        (t.name, t.shape, t.type_id, t.offset, t.shard) for t in full.tensors
    ]
    # dst as a plain name: shard names are made from its stem
    write_stub(paths[1], out / "plain.gguf")
    assert read_gguf(out / "plain-00003-of-00003.gguf").tensors == stub.tensors
    # dst as a directory: the source's names
    other = tmp_path / "dir"
    other.mkdir()
    write_stub(paths[0], other)
    assert read_gguf(other / paths[2].name).metadata == full.metadata


# -- files written by the gguf package --------------------------------------------------------

needs_gguf = pytest.mark.skipif(gguf is None, reason="needs the gguf package and numpy")


def write_with_gguf(
    path: Path,
    *,
    alignment: int | None = None,
    split_max_tensors: int = 0,
    big_endian: bool = False,
) -> None:
    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors, endianess=endian)
    writer.add_block_count(2)
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_token_list([f"tok{i}" for i in range(300)])
    writer.add_token_types([1] * 300)
    writer.add_token_scores([float(i) for i in range(300)])
    writer.add_token_merges(["a b", "c d"])
    writer.add_array("test.u8s", [1, 2, 3])
    writer.add_array("test.floats", [0.5, 1.5])
    writer.add_array("test.bools", [True, False, True])
    writer.add_array("test.nested", [[1, 2], [3]])
    writer.add_bool("test.flag", True)
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -5)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -300)
    writer.add_uint32("test.u32", 4_000_000_000)
    writer.add_int32("test.i32", -70000)
    writer.add_float32("test.f32", 0.25)
    writer.add_uint64("test.u64", 2**60)
    writer.add_int64("test.i64", -(2**60))
    writer.add_float64("test.f64", 1e300)
    writer.add_string("test.str", "ünïcode")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.random((300, 64), dtype=np.float32))
    for i in range(2):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(64, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
        raw = np.zeros((128, 64 // 32 * 34), dtype=np.uint8)
        writer.add_tensor(f"blk.{i}.ffn_up.weight", raw, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        scalar = np.array([7], dtype=np.int32)
        writer.add_tensor(f"blk.{i}.i32", scalar)
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def assert_same_as_gguf_reader(path: Path, model: GGUFFile, shard: int = 0) -> None:
    reader = gguf.GGUFReader(path)
    ours = [t for t in model.tensors if t.shard == shard]
    theirs = reader.tensors
    assert [t.name for t in ours] == [t.name for t in theirs]
    assert [t.shape for t in ours] == [tuple(int(d) for d in t.shape) for t in theirs]
    assert [t.type_id for t in ours] == [int(t.tensor_type) for t in theirs]
    assert [t.n_elements for t in ours] == [int(t.n_elements) for t in theirs]
    assert [t.nbytes for t in ours] == [int(t.n_bytes) for t in theirs]
    if shard == 0:
        assert model.data_offset == reader.data_offset
        assert model.alignment == reader.alignment
    assert [reader.data_offset + t.offset for t in ours] == [t.data_offset for t in theirs]
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or shard != 0:
            continue
        ours_value = model.metadata[key]
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            if field.types[-1] == gguf.GGUFValueType.STRING or len(field.data) > MAX_MATERIALISED:
                assert isinstance(ours_value, SkippedArray)
                assert ours_value.length == len(field.data)
            elif len(field.types) > 2:  # nested: GGUFReader flattens them; checked elsewhere
                assert isinstance(ours_value, tuple)
            else:
                assert ours_value == pytest.approx(tuple(field.contents()))
        else:
            assert ours_value == pytest.approx(field.contents()), key


@needs_gguf
@pytest.mark.parametrize("alignment", [None, 64, 1024])
def test_matches_gguf_reader(tmp_path: Path, alignment: int | None) -> None:
    path = tmp_path / "w.gguf"
    write_with_gguf(path, alignment=alignment)
    model = read_gguf(path)
    assert model.alignment == (alignment or 32)
    assert model.vocab_size == 300
    assert model.metadata["test.nested"] == ((1, 2), (3,))
    assert model.metadata["test.bools"] == (True, False, True)
    assert model.metadata["test.str"] == "ünïcode"
    assert not model.header_only
    assert_same_as_gguf_reader(path, model)


@needs_gguf
def test_gguf_writer_split(tmp_path: Path) -> None:
    path = tmp_path / "w.gguf"
    write_with_gguf(path, split_max_tensors=4)
    shards = sorted(tmp_path.glob("w-*-of-*.gguf"))
    assert len(shards) == 3
    model = read_gguf(shards[-1])
    assert model.shards == tuple(str(p) for p in shards)
    assert len(model.tensors) == 10
    assert model.metadata["split.tensors.count"] == 10
    assert model.vocab_size == 300
    for i, shard in enumerate(shards):
        assert_same_as_gguf_reader(shard, model, shard=i)
    stub_dir = tmp_path / "stubs"
    stub_dir.mkdir()
    write_stub(shards[0], stub_dir)
    stub = read_gguf(stub_dir / shards[0].name)
    assert stub.header_only
    assert stub.tensors == model.tensors


@needs_gguf
def test_gguf_writer_big_endian_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "be.gguf"
    write_with_gguf(path, big_endian=True)
    rejects(path, "big-endian GGUF not supported")


@needs_gguf
def test_gguf_writer_header_only(tmp_path: Path) -> None:
    path = tmp_path / "h.gguf"
    write_with_gguf(path)
    stub = tmp_path / "h-stub.gguf"
    write_stub(path, stub)
    model = read_gguf(stub)
    assert model.header_only
    assert model.tensors == read_gguf(path).tensors
