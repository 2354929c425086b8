"""Hypothesis strategies shared by the property tests of the readers of outside data."""

from __future__ import annotations

from hypothesis import settings, strategies as st

# modest: the suite must stay fast on two shared cores
PROPERTY = settings(max_examples=150, deadline=None)


@st.composite
def mutated(draw, sample: bytes) -> bytes:
    """sample with a few random byte edits: flips, inserts, deletes, a truncation."""
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
        elif op == "dup" and data:
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 32))]
    return bytes(data)


def inputs(sample: bytes):
    """Random bytes, random text, and mutations of a valid sample."""
    return st.one_of(st.binary(max_size=512), st.text(max_size=256).map(str.encode), mutated(sample))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
