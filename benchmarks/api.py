"""The API at scale: revy's REST and GraphQL lists on a history of a million object deltas.

`python -m benchmarks --db postgres --api-scale` seeds a PostgreSQL database with 300,000
revisions, 1,000,000 object deltas and 3,000,000 attribute deltas (server-side, with
`generate_series`: a few minutes), then requests every list and filter of `/api/revisions/`
and `/api/deltas/` and the matching GraphQL queries through Django's test client (middleware,
session authentication, DRF or strawberry, serializers: the whole request stack), and reports
per endpoint the median and 95th percentile of the response time and the number of queries.
Queries slower than `EXPLAIN_OVER` are explained (`EXPLAIN (ANALYZE, BUFFERS)`).

The seeded history looks like a busy application's: revisions of one to four object deltas,
three attribute deltas each (one in twenty by a second actor, the system), 1,000 users acting,
one of them in 3% of the revisions, the system in 10%; nine deltas in ten change items, one in
ten categories. Users: `admin` (superuser), `viewer` (may view categories only, so sees a
tenth of the history), `busy` (the 3% actor) and `idle` (never acted).

With `--keep` the database (`revy_bench_api_<sizes>`, or `$REVY_BENCH_API_DB`) is kept, and a
later run with the same sizes measures it again without seeding (migrations run first, so a
new index is built on the kept history). The report ends with the size of every history table
and index, and the bytes per change (object delta) they add up to.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

# Models are imported where they are used: this module is imported for its sizes before
# Django is set up (the database's name depends on them).

# Seconds: queries slower than this are explained in the report.
EXPLAIN_OVER = 0.02
# The goal of every list and filter: median at most this, with a constant query count.
GOAL_P50 = 0.02
# An endpoint whose warm-up request took longer than this is timed `SLOW_REQUESTS` times.
SLOW_OVER = 1.0
SLOW_REQUESTS = 3


@dataclass(frozen=True)
class ScaleSizes:
    revisions: int
    object_deltas: int
    attributes_per_delta: int
    users: int
    items: int
    categories: int
    requests: int  # timed requests per endpoint

    @property
    def attribute_deltas(self) -> int:
        return self.object_deltas * self.attributes_per_delta

    def database_name(self) -> str:
        return os.environ.get("REVY_BENCH_API_DB") or f"revy_bench_api_{self.object_deltas}"


SCALE = ScaleSizes(
    revisions=300_000,
    object_deltas=1_000_000,
    attributes_per_delta=3,
    users=1_000,
    items=100_000,
    categories=100,
    requests=30,
)
QUICK_SCALE = ScaleSizes(
    revisions=3_000,
    object_deltas=10_000,
    attributes_per_delta=3,
    users=100,
    items=1_000,
    categories=10,
    requests=5,
)


# Seeding ---------------------------------------------------------------------------------


def seeded(sizes: ScaleSizes) -> bool:
    """True when the database already holds the history of these sizes."""
    from revy.contrib.django.utils import get_object_delta_model

    try:
        return get_object_delta_model()._base_manager.count() == sizes.object_deltas
    except Exception:
        return False


def seed(sizes: ScaleSizes, say: Callable[[str], None]) -> None:
    """Write the users, rows and history of `sizes` with server-side statements."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    from benchmarks.benchapp.models import Category, Item
    from revy.contrib.django.utils import (
        get_attribute_delta_model,
        get_object_delta_model,
        get_revision_model,
    )

    user_model = get_user_model()
    types = ContentType.objects.get_for_models(Item, Category, user_model)
    item_type, category_type, user_type = types[Item].pk, types[Category].pk, types[user_model].pk
    quote = connection.ops.quote_name
    users, revisions = quote(user_model._meta.db_table), quote(get_revision_model()._meta.db_table)
    deltas = quote(get_object_delta_model()._meta.db_table)
    attributes = quote(get_attribute_delta_model()._meta.db_table)
    categories, items = quote(Category._meta.db_table), quote(Item._meta.db_table)
    base = "timestamptz '2024-01-01 00:00:00+00'"

    admin = user_model.objects.create_superuser("admin", "admin@example.com", "admin")
    viewer = user_model.objects.create_user("viewer", password="viewer")
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_category", content_type_id=category_type)
    )
    busy = user_model.objects.create_user("busy", password="busy")
    user_model.objects.create_user("idle", password="idle")
    del admin

    def run(label: str, sql: str) -> None:
        # No parameters (the numbers are ours): `%` is SQL's modulo here.
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql)
        say(f"{label}: {time.perf_counter() - started:.1f} s")

    run(
        f"{sizes.users:,} users",
        f"INSERT INTO {users} (password, is_superuser, username, first_name, last_name, email, "
        "is_staff, is_active, date_joined) SELECT '!', false, 'user' || g, '', '', '', false, "
        f"true, {base} FROM generate_series(1, {sizes.users}) g",
    )
    first_user = user_model.objects.get(username="user1").pk
    run(
        f"{sizes.categories:,} categories",
        f"INSERT INTO {categories} (name) SELECT 'Category ' || g "
        f"FROM generate_series(1, {sizes.categories}) g",
    )
    run(
        f"{sizes.items:,} items",
        f"INSERT INTO {items} (title, sku, description, quantity, price, active, updated_at, "
        f"category_id) SELECT 'Item ' || g, 'SKU-' || g, 'A widget.', g % 1000, 19.99, true, "
        f"{base}, (SELECT min(id) FROM {categories}) + g % {sizes.categories} "
        f"FROM generate_series(1, {sizes.items}) g",
    )
    first_category = Category.objects.order_by("pk").values_list("pk", flat=True).first()
    first_item = Item.objects.order_by("pk").values_list("pk", flat=True).first()
    # The actor of revision r (the same formula again for its deltas): the system in one
    # revision in ten, `busy` in one in 33 (3%), else one of the users.
    actor_type = f"CASE WHEN r % 10 = 0 THEN NULL ELSE {user_type} END"
    actor_id = (
        f"CASE WHEN r % 10 = 0 THEN NULL WHEN r % 33 = 1 THEN '{busy.pk}' "
        f"ELSE ({first_user} + (r * 7919) % {sizes.users})::text END"
    )
    run(
        f"{sizes.revisions:,} revisions",
        f"INSERT INTO {revisions} (description, created_at, metadata) SELECT "
        "CASE WHEN r % 5 = 0 THEN 'Edited through the API, batch ' || r ELSE '' END, "
        f"{base} + r * interval '1 second', '{{}}'::jsonb "
        f"FROM generate_series(1, {sizes.revisions}) r",
    )
    first_revision = (
        get_revision_model()._base_manager.order_by("pk").values_list("pk", flat=True)[0]
    )
    # Delta g belongs to revision r: ids and times grow together, one to four per revision.
    run(
        f"{sizes.object_deltas:,} object deltas",
        f"INSERT INTO {deltas} (revision_id, actor_type_id, actor_id, action, event_type, "
        "description, content_type_id, content_id, data, created_at) "
        f"SELECT {first_revision} - 1 + r, {actor_type}, {actor_id}, action, "
        "CASE WHEN is_item THEN 'benchapp.item.' ELSE 'benchapp.category.' END || "
        "CASE action WHEN 'Create' THEN 'created' WHEN 'Delete' THEN 'deleted' "
        "ELSE 'updated' END, CASE WHEN g % 20 = 0 THEN 'Corrected by the system.' ELSE '' END, "
        f"CASE WHEN is_item THEN {item_type} ELSE {category_type} END, content_id::text, "
        "jsonb_build_object('id', content_id, 'title', 'Item ' || g, 'quantity', g), "
        f"{base} + r * interval '1 second' FROM ("
        f"  SELECT g, 1 + ((g - 1)::bigint * {sizes.revisions}) / {sizes.object_deltas} AS r,"
        "   g % 10 <> 3 AS is_item,"
        f"  CASE WHEN g % 10 <> 3 THEN {first_item} + (g * 7) % {sizes.items}"
        f"   ELSE {first_category} + g % {sizes.categories} END AS content_id,"
        "   CASE WHEN g % 100 = 1 THEN 'Create' WHEN g % 100 = 50 THEN 'Delete'"
        "   ELSE 'Update' END AS action"
        f"  FROM generate_series(1, {sizes.object_deltas}) g) AS numbered ORDER BY g",
    )
    fields = ", ".join(
        f"({number}, '{name}')"
        for number, name in enumerate(["title", "quantity", "price", "sku", "active"])
    )
    run(
        f"{sizes.attribute_deltas:,} attribute deltas",
        f"INSERT INTO {attributes} (revision_id, parent_id, actor_type_id, actor_id, action, "
        "description, content_type_id, content_id, field_name, old_value, new_value, created_at, "
        "automatic) SELECT d.revision_id, d.id, "
        # One attribute delta in twenty is the system's: a collaborative revision.
        "CASE WHEN (d.id + f.number) % 20 = 0 THEN NULL ELSE d.actor_type_id END, "
        "CASE WHEN (d.id + f.number) % 20 = 0 THEN NULL ELSE d.actor_id END, 'Set', '', "
        "d.content_type_id, d.content_id, f.name, to_jsonb(d.id - 1), to_jsonb(d.id), "
        f"d.created_at, false FROM {deltas} d CROSS JOIN (VALUES {fields}) AS f (number, name) "
        f"WHERE f.number < {sizes.attributes_per_delta} ORDER BY d.id, f.number",
    )
    run("VACUUM ANALYZE", "VACUUM ANALYZE")


# Measuring -------------------------------------------------------------------------------


@dataclass
class EndpointResult:
    name: str
    user: str
    method: str
    path: str
    p50: float
    p95: float
    queries: int
    queries_next: int | None  # the same request for a later page (constant query count)
    rows: int
    slowest_sql: str = ""
    slowest_time: float = 0.0
    explain: str = field(default="", repr=False)
    compare_to: str | None = None  # REST endpoint of the same page (GraphQL lines)
    # That REST endpoint's p50, timed in alternation with this one (the same moments' load).
    reference_p50: float | None = None

    @property
    def passed(self) -> bool:
        return self.p50 <= GOAL_P50


@dataclass(frozen=True)
class Endpoint:
    name: str
    user: str
    path: str
    graphql: str | None = None  # a GraphQL query (POSTed to `path`)
    compare_to: str | None = None
    rows: Callable[[Any], int] = lambda body: len(body.get("results", ()))
    next_page: bool = True


def _endpoints(ids: dict[str, Any]) -> list[Endpoint]:
    busy, idle, item, category = ids["busy"], ids["idle"], ids["item"], ids["category"]
    revision, delta = ids["revision"], ids["delta"]
    listing = [
        ("", "all"),
        (f"?actor=auth.user:{idle}", "actor without deltas"),
        (f"?actor=auth.user:{busy}", "actor of 3%"),
        ("?actor=system", "actor system"),
        ("?content_type=benchapp.category", "content_type 10%"),
        (f"?content_type=benchapp.item&object_id={item}", "one object"),
        ("?action=Delete", "action 1%"),
        ("?event_type=benchapp.category.created", "event_type 0.1%"),
        ("?since=2024-01-02T00:00:00Z&until=2024-01-02T01:00:00Z", "since/until 1 hour"),
        ("?search=nothing-matches-this", "search without match"),
        ("?search=batch 12345", "search with matches"),
    ]
    endpoints = []
    for resource in ("revisions", "deltas"):
        for query, label in listing:
            endpoints.append(Endpoint(f"/{resource}/ {label}", "admin", f"/api/{resource}/{query}"))
        endpoints.append(Endpoint(f"/{resource}/ all", "viewer", f"/api/{resource}/"))
        endpoints.append(
            Endpoint(
                f"/{resource}/ actor of 3%", "viewer", f"/api/{resource}/?actor=auth.user:{busy}"
            )
        )
    endpoints += [
        Endpoint(
            "/revisions/{id}/",
            "admin",
            f"/api/revisions/{revision}/",
            rows=lambda b: 1,
            next_page=False,
        ),
        Endpoint(
            "/deltas/{id}/", "admin", f"/api/deltas/{delta}/", rows=lambda b: 1, next_page=False
        ),
    ]
    revisions_page = (
        "{ revisions(first: 50) { edges { node { id description createdAt deltaCount "
        "actors { type id display } } } pageInfo { endCursor hasNextPage } } }"
    )
    history_page = (
        f'{{ objectHistory(type: "benchapp.item", id: "{item}", first: 50) '
        "{ edges { node { id action "
        "eventType description createdAt actor { type id display } content { type id display } "
        "changes { field action old new description actor { type id display } } } } "
        "pageInfo { endCursor hasNextPage } } }"
    )
    gql_rows = lambda key: lambda body: len(body["data"][key]["edges"])  # noqa: E731
    endpoints += [
        Endpoint(
            "GraphQL revisions(first: 50)",
            "admin",
            "/graphql/",
            graphql=revisions_page,
            compare_to="/revisions/ all",
            rows=gql_rows("revisions"),
            next_page=False,
        ),
        Endpoint(
            "GraphQL revisions(first: 50)",
            "viewer",
            "/graphql/",
            graphql=revisions_page,
            compare_to="/revisions/ all",
            rows=gql_rows("revisions"),
            next_page=False,
        ),
        Endpoint(
            "GraphQL objectHistory(first: 50)",
            "admin",
            "/graphql/",
            graphql=history_page,
            compare_to="/deltas/ one object",
            rows=gql_rows("objectHistory"),
            next_page=False,
        ),
        Endpoint(
            "GraphQL revisions totalCount",
            "viewer",
            "/graphql/",
            graphql="{ revisions(first: 1) { totalCount } }",
            rows=lambda body: body["data"]["revisions"]["totalCount"],
            next_page=False,
        ),
        Endpoint(
            "GraphQL revisions(actor) totalCount",
            "admin",
            "/graphql/",
            graphql=f'{{ revisions(first: 1, filters: {{actor: "auth.user:{busy}"}}) '
            "{ totalCount } }",
            rows=lambda body: body["data"]["revisions"]["totalCount"],
            next_page=False,
        ),
    ]
    del category
    return endpoints


def _request(client: Any, endpoint: Endpoint, path: str | None = None):
    if endpoint.graphql is not None:
        return client.post(
            endpoint.path, {"query": endpoint.graphql}, content_type="application/json"
        )
    return client.get(path or endpoint.path)


def _check(response, endpoint: Endpoint) -> dict:
    if response.status_code != 200:
        raise RuntimeError(
            f"{endpoint.name} ({endpoint.user}): HTTP {response.status_code}: "
            f"{response.content[:500]!r}"
        )
    body = response.json()
    if endpoint.graphql is not None and body.get("errors"):
        raise RuntimeError(f"{endpoint.name}: {body['errors']}")
    return body


def _slowest(queries: list[dict]) -> tuple[str, float]:
    if not queries:
        return "", 0.0
    slowest = max(queries, key=lambda query: float(query["time"]))
    return slowest["sql"], float(slowest["time"])


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def measure(sizes: ScaleSizes, say: Callable[[str], None]) -> list[EndpointResult]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from benchmarks.benchapp.models import Category, Item

    user_model = get_user_model()
    from revy.contrib.django.utils import get_object_delta_model, get_revision_model

    ids = {
        "busy": user_model.objects.get(username="busy").pk,
        "idle": user_model.objects.get(username="idle").pk,
        "item": Item.objects.order_by("pk").values_list("pk", flat=True)[7],
        "category": Category.objects.order_by("pk").values_list("pk", flat=True)[3],
        "revision": get_revision_model()._base_manager.order_by("-pk")[1000].pk,
        "delta": get_object_delta_model()._base_manager.order_by("-pk")[1000].pk,
    }
    clients = {}
    for username in ("admin", "viewer"):
        client = Client()
        client.force_login(user_model.objects.get(username=username))
        clients[username] = client
    results = []
    endpoints = _endpoints(ids)
    rest = {(each.name, each.user): each for each in endpoints if each.graphql is None}
    for endpoint in endpoints:
        client = clients[endpoint.user]
        for _ in range(2):  # warm up: caches, the server's buffers
            started = time.perf_counter()
            _check(_request(client, endpoint), endpoint)
            warm = time.perf_counter() - started
        with CaptureQueriesContext(connection) as captured:
            body = _check(_request(client, endpoint), endpoint)
        queries = list(captured.captured_queries)
        queries_next = None
        if endpoint.next_page and body.get("next"):
            with CaptureQueriesContext(connection) as later:
                _check(_request(client, endpoint, body["next"]), endpoint)
            queries_next = len(later.captured_queries)
        times, reference_times = [], []
        reference = rest.get((endpoint.compare_to, endpoint.user)) if endpoint.compare_to else None
        for _ in range(sizes.requests if warm <= SLOW_OVER else SLOW_REQUESTS):
            started = time.perf_counter()
            _check(_request(client, endpoint), endpoint)
            times.append(time.perf_counter() - started)
            if reference is not None:
                # Alternated with the GraphQL request: a ratio of the same moments.
                started = time.perf_counter()
                _check(_request(client, reference), reference)
                reference_times.append(time.perf_counter() - started)
        times.sort()
        sql, seconds = _slowest(queries)
        result = EndpointResult(
            name=endpoint.name,
            user=endpoint.user,
            method="POST" if endpoint.graphql else "GET",
            path=endpoint.path if endpoint.graphql is None else endpoint.graphql,
            p50=statistics.median(times),
            p95=times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
            queries=len(queries),
            queries_next=queries_next,
            rows=endpoint.rows(body),
            slowest_sql=sql,
            slowest_time=seconds,
            compare_to=endpoint.compare_to,
            reference_p50=statistics.median(reference_times) if reference_times else None,
        )
        if seconds > EXPLAIN_OVER or result.p50 > GOAL_P50:
            result.explain = explain(sql) if sql.lstrip().upper().startswith("SELECT") else ""
        say(
            f"{endpoint.name} [{endpoint.user}]: p50 {result.p50 * 1e3:.1f} ms, "
            f"p95 {result.p95 * 1e3:.1f} ms, {result.queries} queries"
        )
        results.append(result)
    return results


# Storage ---------------------------------------------------------------------------------


def storage(sizes: ScaleSizes) -> list[str]:
    """The size of every history table and index (PostgreSQL), and bytes per change."""
    from revy.contrib.django.utils import (
        get_attribute_delta_model,
        get_object_delta_model,
        get_revision_model,
    )

    tables = [
        model._meta.db_table
        for model in (get_revision_model(), get_object_delta_model(), get_attribute_delta_model())
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_class t "
            "JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE t.relname = ANY(%s) ORDER BY t.relname, i.relname",
            [tables],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT relname, pg_table_size(oid) FROM pg_class WHERE relname = ANY(%s) "
            "ORDER BY relname",
            [tables],
        )
        heaps = cursor.fetchall()
    mb = lambda size: f"{size / 1e6:,.1f} MB"  # noqa: E731
    lines = ["| Relation | Size |", "| --- | ---: |"]
    for table, size in heaps:
        lines.append(f"| {table} (rows, TOAST) | {mb(size)} |")
    for table, index, size in indexes:
        lines.append(f"| {table}: index {index} | {mb(size)} |")
    heap = sum(size for _, size in heaps)
    index_total = sum(size for _, _, size in indexes)
    total = heap + index_total
    per_change = total / sizes.object_deltas
    lines += [
        f"| **all history** (rows {mb(heap)}, indexes {mb(index_total)}) | **{mb(total)}** |",
        "",
        f"{per_change:,.0f} bytes per change (object delta, with its "
        f"{sizes.attributes_per_delta} attribute deltas and its share of a revision): "
        f"{per_change:,.0f} MB per million changes.",
    ]
    return lines


# Report ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def table(results: list[EndpointResult]) -> list[str]:
    rest = {(result.name, result.user): result for result in results if result.method == "GET"}
    lines = [
        "| Endpoint | User | p50 | p95 | Queries (next page) | Rows | Goal p50 <= 20 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for result in results:
        queries = str(result.queries)
        if result.queries_next is not None:
            queries += f" ({result.queries_next})"
        verdict = "PASS" if result.passed else "MISS"
        if result.compare_to:
            reference = rest.get((result.compare_to, result.user))
            reference_p50 = result.reference_p50 or (reference.p50 if reference else None)
            if reference_p50:
                ratio = result.p50 / reference_p50
                verdict += (
                    f"; {ratio:.2f}x REST `{result.compare_to}` ({_ms(reference_p50)}, alternated)"
                    if result.reference_p50
                    else f"; {ratio:.2f}x REST `{result.compare_to}`"
                )
        path = result.path if result.method == "GET" else "(GraphQL)"
        lines.append(
            f"| {result.name} `{path.removeprefix('/api')}` | {result.user} | "
            f"{_ms(result.p50)} | {_ms(result.p95)} | {queries} | {result.rows:,} | {verdict} |"
        )
    return lines


def explains(results: list[EndpointResult]) -> list[str]:
    lines = []
    for result in results:
        if not result.explain:
            continue
        lines += [
            f"#### {result.name} ({result.user}): slowest query {_ms(result.slowest_time)}",
            "",
            "```sql",
            result.slowest_sql,
            "```",
            "",
            "```text",
            result.explain,
            "```",
            "",
        ]
    return lines


def write_report(
    path: str, results: list[EndpointResult], header: list[str], sizes_lines: list[str] = ()
) -> None:
    data = json.dumps([asdict(result) for result in results]).replace(">", "\\u003e")
    text = "\n".join(
        [
            "# revy's API at scale",
            "",
            *header,
            "",
            *table(results),
            "",
            "## EXPLAIN ANALYZE of the slow queries",
            "",
            *(explains(results) or ["No query took more than 20 ms."]),
            *(["## Storage", "", *sizes_lines, ""] if sizes_lines else []),
            f"<!-- revy-bench-api-data {data} -->",
            "",
        ]
    )
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def iter_lines(results: list[EndpointResult]) -> Iterator[str]:
    yield from table(results)
