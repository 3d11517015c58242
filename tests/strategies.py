"""Hypothesis strategies of field values that the property tests of history writes share."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["json_values", "texts"]

# Text a PostgreSQL text column stores: no NUL character, no lone surrogate.
texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
# Values of a non-null JSONField.
json_values = st.recursive(
    st.none() | st.integers(-(2**53), 2**53) | texts | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
).filter(lambda value: value is not None)  # None is SQL NULL, which the column refuses
