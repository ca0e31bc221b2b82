"""The migrations build exactly the tables ``store.py`` declares, and undo themselves.

For every database owner the registry knows (:func:`kgi.registry.database_owners`), a
fresh database is migrated to head with that owner's scripts and compared with the owner's declared
``MetaData`` by Alembic's autogenerate comparison (``compare_metadata``): a column, index,
unique constraint, foreign key, nullability, type or server default that a migration
forgot, or that ``store.py`` declares differently, is a difference and fails the test.

How the comparison is set up, and why:

* ``compare_type=True``. ``UTCDateTime`` needs no hook of its own: Alembic compiles
  each declared type for the database's dialect, and a ``TypeDecorator`` compiles as its
  ``impl`` (``DateTime(timezone=True)``), so it is compared as the ``DATETIME`` (SQLite)
  or ``TIMESTAMP WITH TIME ZONE`` (PostgreSQL) a migration created.
  :func:`test_comparison_catches_drift` shows that a ``UTCDateTime`` column declared as
  text, or a text column declared as ``UTCDateTime``, is still reported. A migration that
  wrote ``sa.DateTime`` instead of ``UTCDateTime`` cannot be told apart on SQLite (it stores
  no zone either way) but is on PostgreSQL (``WITHOUT TIME ZONE``).
* ``compare_server_default=True``: neither side declares server defaults today (the
  defaults are Python-side, in ``store.py``), so one added on a single side is drift.
* Alembic's own ``alembic_version`` table is left out of the comparison (``include_name``).
* Alembic does not compare the ``WHERE`` of partial indexes (``uq_item_revisions_pending``
  is one: a unique index over *pending* revisions only), so :func:`index_predicate_diffs`
  does: the text on SQLite (which keeps it as written), its presence on other backends
  (PostgreSQL rewrites the predicate, e.g. with casts).

The downgrade tests run each owner's chain down to base (in one go, and one revision at
a time, checking that each step restores the schema the previous revision had built) and
back up to head: a broken ``downgrade()`` fails them.

The database URL is a parameter of every helper; the ``database_url`` fixture makes a
SQLite file per owner in the test's temp dir. To run against PostgreSQL, make it return
the URL of an *empty* database: the tests refuse a database that already has tables,
since they drop everything on the way down.
"""

from __future__ import annotations

import difflib
import pprint
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from kgi import registry
from shared.database import UTCDateTime, create_engine_for

#: Where each owner's tables are declared: the schema its migrations must produce.
DECLARED: dict[str, sa.MetaData] = {
    owner: registry.declared_tables(owner) for owner in registry.database_owners()
}

#: Alembic's bookkeeping table (the default name; env.py does not change it).
VERSION_TABLE = "alembic_version"

OWNERS = sorted(registry.database_owners())


# --- helpers: every one takes an engine or a URL, never assumes SQLite -----------------


def fresh_engine(url: str) -> Engine:
    """An engine for ``url``, configured as the services configure theirs, after making
    sure the database is empty (the downgrade tests drop every table in it)."""
    engine = create_engine_for(url)
    with engine.connect() as conn:
        existing = sa.inspect(conn).get_table_names()
    if existing:
        engine.dispose()
        raise RuntimeError(f"refusing to test migrations on {url}: it has tables {existing}")
    return engine


def alembic_config(owner: str, engine: Engine) -> Config:
    """The Alembic configuration :func:`shared.database.migrate` builds, on ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(registry.part(owner).migrations))
    config.attributes["engine"] = engine
    return config


def revision_chain(config: Config) -> list[str]:
    """The owner's revisions, oldest first; fails unless they form one straight line (two
    engineers each adding the "next" revision leave two heads, and migrate() fails)."""
    script = ScriptDirectory.from_config(config)
    heads = script.get_heads()
    assert len(heads) == 1, f"{script.dir} has {len(heads)} heads {heads}; expected one"
    chain = [revision.revision for revision in script.walk_revisions("base", "heads")][::-1]
    for previous, revision in zip([None, *chain], chain, strict=False):
        down = script.get_revision(revision).down_revision
        assert down == previous, f"{script.dir}: {revision} revises {down!r}, not {previous!r}"
    return chain


def _skip_version_table(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic's ``include_name`` hook: leave out Alembic's own version table."""
    return not (type_ == "table" and name == VERSION_TABLE)


def _migration_context(conn: sa.Connection) -> MigrationContext:
    """A context for comparing ``conn``'s schema, set up as the module docstring says."""
    return MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": _skip_version_table,
        },
    )


def schema_diffs(engine: Engine, metadata: sa.MetaData) -> list[Any]:
    """Alembic's differences between the database and ``metadata`` (empty: they match)."""
    with engine.connect() as conn:
        return compare_metadata(_migration_context(conn), metadata)


def suggested_upgrade(engine: Engine, metadata: sa.MetaData) -> str:
    """The Alembic operations that would bring the database to ``metadata``, as code:
    a starting point for the missing migration (check it before using it)."""
    with engine.connect() as conn:
        script = produce_migrations(_migration_context(conn), metadata)
    assert script.upgrade_ops is not None
    return render_python_code(script.upgrade_ops, render_as_batch=True)


def index_predicate_diffs(engine: Engine, metadata: sa.MetaData) -> list[str]:
    """Differences in the ``WHERE`` of partial indexes, which Alembic does not compare.

    Only indexes on both sides are checked (Alembic reports the others). SQLite keeps the
    predicate as written, so its text is compared; other backends rewrite it, so there
    only whether the index is partial is compared.
    """
    problems: list[str] = []
    with engine.connect() as conn:
        dialect = conn.dialect.name
        key = f"{dialect}_where"
        inspector = sa.inspect(conn)
        for table in metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            reflected = {ix["name"]: ix for ix in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in reflected:
                    continue
                declared = index.dialect_kwargs.get(key)
                found = reflected[index.name].get("dialect_options", {}).get(key)
                if dialect == "sqlite":
                    differ = _sql_text(declared) != _sql_text(found)
                else:
                    differ = (declared is None) != (found is None)
                if differ:
                    problems.append(
                        f"index {index.name} on {table.name}: WHERE is"
                        f" {_sql_text(found)!r} in the migrated database,"
                        f" {_sql_text(declared)!r} in store.py"
                    )
    return problems


def _sql_text(clause: Any) -> str | None:
    """A predicate as text with its whitespace collapsed, or None for no predicate."""
    return None if clause is None else " ".join(str(clause).split())


def schema_snapshot(engine: Engine) -> dict[str, dict[str, list[str]]]:
    """What the database holds, table by table, as sorted text: easy to compare and to
    diff. Column order is left out (SQLite's batch mode may move a column to the end)."""
    snapshot: dict[str, dict[str, list[str]]] = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        dialect = conn.dialect
        for name in inspector.get_table_names():
            if name == VERSION_TABLE:
                continue
            columns = [
                f"{c['name']} {c['type'].compile(dialect=dialect)}"
                f"{'' if c['nullable'] else ' NOT NULL'} default={c.get('default')!r}"
                for c in inspector.get_columns(name)
            ]
            indexes = [
                f"{ix['name']} {ix['column_names']} unique={bool(ix['unique'])}"
                f" {_options_text(ix.get('dialect_options', {}))}"
                for ix in inspector.get_indexes(name)
            ]
            uniques = [
                f"{uq['name']} {uq['column_names']}"
                for uq in inspector.get_unique_constraints(name)
            ]
            foreign_keys = [
                f"{fk['constrained_columns']} -> {fk['referred_table']}"
                f"{fk['referred_columns']} {_options_text(fk.get('options', {}))}"
                for fk in inspector.get_foreign_keys(name)
            ]
            snapshot[name] = {
                "columns": sorted(columns),
                "primary_key": [str(inspector.get_pk_constraint(name)["constrained_columns"])],
                "indexes": sorted(indexes),
                "unique_constraints": sorted(uniques),
                "foreign_keys": sorted(foreign_keys),
            }
    return snapshot


def _options_text(options: dict[str, Any]) -> str:
    """Reflected dialect options as stable text (a predicate is an object, not text)."""
    return str({key: _sql_text(value) for key, value in sorted(options.items())})


def describe(diff: Any) -> str:
    """One of Alembic's differences as a line a person can act on.

    ``add_*`` means store.py declares it and the migrations do not create it; ``remove_*``
    means the migrations create it and store.py does not declare it."""
    if isinstance(diff, list):  # the changes to one column come as a list
        return "\n".join(describe(item) for item in diff)
    kind, *args = diff
    if kind.startswith("modify_"):
        _schema, table, column, _existing, in_database, declared = args
        what = kind.removeprefix("modify_")
        return (
            f"{table}.{column}: {what} is {in_database!r} in the migrated database,"
            f" {declared!r} in store.py"
        )
    action, _, _ = kind.partition("_")
    where = {
        "add": "declared in store.py but not created by any migration",
        "remove": "created by the migrations but not declared in store.py",
    }.get(action, kind)
    thing = args[-1]
    if isinstance(thing, sa.Table):
        subject = f"table {thing.name}"
    elif isinstance(thing, sa.Column):
        subject = f"column {args[-2]}.{thing.name} {thing.type!r} nullable={thing.nullable}"
    elif isinstance(thing, sa.Index):
        columns = ", ".join(getattr(e, "name", None) or str(e) for e in thing.expressions)
        unique = "unique " if thing.unique else ""
        subject = f"{unique}index {thing.name} on {thing.table}({columns})"
    elif isinstance(thing, sa.ForeignKeyConstraint):
        targets = ", ".join(element.target_fullname for element in thing.elements)
        subject = (
            f"foreign key {thing.table}({', '.join(thing.column_keys)}) -> {targets}"
            f" ON DELETE {thing.ondelete}"
        )
    elif isinstance(thing, sa.UniqueConstraint):
        columns = ", ".join(column.name for column in thing.columns)
        subject = f"unique constraint {thing.name or '(unnamed)'} on {thing.table}({columns})"
    else:
        subject = repr(thing)
    return f"{subject}: {where}"


def mismatch_report(engine: Engine, metadata: sa.MetaData) -> list[str]:
    """Every difference between the migrated database and ``metadata``, described."""
    return [describe(diff) for diff in schema_diffs(engine, metadata)] + index_predicate_diffs(
        engine, metadata
    )


def assert_matches_declared(owner: str, engine: Engine) -> None:
    """Fail, listing the differences and a suggested migration, unless the database is
    exactly what ``owner``'s store.py declares."""
    metadata = DECLARED[owner]
    problems = mismatch_report(engine, metadata)
    if problems:
        pytest.fail(
            f"{owner}: the migrations (at head) and store.py disagree:\n"
            + "\n".join(f"  - {line}" for line in problems)
            + "\n\nAlembic would bring the database to store.py with:\n"
            + suggested_upgrade(engine, metadata),
            pytrace=False,
        )


def assert_same_schema(actual: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    """Fail with a unified diff unless the two :func:`schema_snapshot` results match."""
    if actual != expected:
        diff = difflib.unified_diff(
            pprint.pformat(expected, width=100).splitlines(),
            pprint.pformat(actual, width=100).splitlines(),
            "expected",
            "actual",
            lineterm="",
        )
        pytest.fail(f"{what}:\n" + "\n".join(diff), pytrace=False)


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Gives the URL of an empty database for an owner, on each backend the services run
    on: SQLite (the embedded default) and PostgreSQL (production)."""
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        return lambda owner: postgres.create_database(owner)
    return lambda owner: f"sqlite:///{tmp_path / f'{owner}.db'}"


@pytest.fixture
def engines() -> Iterator[Callable[[str], Engine]]:
    """Makes engines with :func:`fresh_engine` and disposes of them after the test."""
    made: list[Engine] = []

    def make(url: str) -> Engine:
        made.append(fresh_engine(url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


# --- tests -----------------------------------------------------------------------------


def test_every_database_owner_declares_its_tables() -> None:
    """A part with migrations names the tables they must build (its ``tables``)."""
    assert all(registry.part(owner).tables for owner in registry.database_owners())


@pytest.mark.parametrize("owner", OWNERS)
def test_migrations_build_the_declared_tables(
    owner: str, database_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    engine = engines(database_url(owner))
    command.upgrade(alembic_config(owner, engine), "head")
    assert_matches_declared(owner, engine)


@pytest.mark.parametrize("owner", OWNERS)
def test_downgrade_to_base_and_upgrade_again(
    owner: str, database_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    engine = engines(database_url(owner))
    config = alembic_config(owner, engine)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert_same_schema(schema_snapshot(engine), {}, f"{owner}: left behind at base")
    command.upgrade(config, "head")
    assert_matches_declared(owner, engine)


@pytest.mark.parametrize("owner", OWNERS)
def test_each_downgrade_restores_the_previous_schema(
    owner: str, database_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    """Up one revision at a time, noting the schema; then down one at a time: each
    downgrade must leave what the revision before it had built (a forgotten index or
    a column renamed back wrongly shows here, not only at base)."""
    engine = engines(database_url(owner))
    config = alembic_config(owner, engine)
    chain = revision_chain(config)
    built = {"base": schema_snapshot(engine)}
    for revision in chain:
        command.upgrade(config, revision)
        built[revision] = schema_snapshot(engine)
    steps: Sequence[tuple[str, str]] = list(zip(chain, ["base", *chain], strict=False))
    for revision, previous in reversed(steps):
        command.downgrade(config, previous)
        assert_same_schema(
            schema_snapshot(engine),
            built[previous],
            f"{owner}: downgrading {revision} did not restore the schema of {previous}",
        )
    command.upgrade(config, "head")
    assert_matches_declared(owner, engine)


#: Changes to a copy of the feeds tables, each of which the comparison must report: the
#: proof that an empty result above means "no drift", not "nothing compared". Feeds has
#: every kind of thing checked (UTCDateTime, partial unique index, foreign keys).
DRIFT: dict[str, tuple[Callable[[sa.MetaData], None], *tuple[str, ...]]] = {
    "UTCDateTime declared as text": (
        lambda md: setattr(md.tables["item_history"].c.at, "type", sa.String(30)),
        "item_history.at: type",
    ),
    "text declared as UTCDateTime": (
        lambda md: setattr(md.tables["item_history"].c.actor, "type", UTCDateTime()),
        "item_history.actor: type",
    ),
    "string length": (
        lambda md: setattr(md.tables["item_history"].c.actor, "type", sa.String(200)),
        "item_history.actor: type",
    ),
    "nullability": (
        lambda md: setattr(md.tables["item_history"].c.comment, "nullable", False),
        "item_history.comment: nullable",
    ),
    "server default": (
        lambda md: setattr(
            md.tables["item_history"].c.comment, "server_default", sa.DefaultClause("x")
        ),
        "item_history.comment: default",
    ),
    "column no migration adds": (
        lambda md: md.tables["sources"].append_column(sa.Column("owner", sa.String(254))),
        "column sources.owner",
    ),
    "index store.py no longer declares": (
        lambda md: md.tables["sources"].indexes.clear(),
        "index ix_sources_next_fetch_at on sources(next_fetch_at): created by",
    ),
    "unique constraint no migration adds": (
        lambda md: md.tables["sources"].append_constraint(
            sa.UniqueConstraint("name", name="uq_sources_name")
        ),
        "unique constraint uq_sources_name on sources(name): declared",
    ),
    "foreign key action": (
        lambda md: setattr(
            next(iter(md.tables["item_history"].foreign_key_constraints)), "ondelete", "SET NULL"
        ),
        # Alembic reports a changed foreign key as one removed and one added.
        "foreign key item_history(item_id) -> items.id ON DELETE CASCADE: created by",
        "foreign key item_history(item_id) -> items.id ON DELETE SET NULL: declared",
    ),
    "partial index made full": (
        lambda md: _drop_predicate(md.tables["item_revisions"], "uq_item_revisions_pending"),
        "index uq_item_revisions_pending on item_revisions: WHERE",
    ),
}


def _drop_predicate(table: sa.Table, index_name: str) -> None:
    """Make the partial index ``index_name`` of ``table`` a full one, on every backend."""
    index = next(ix for ix in table.indexes if ix.name == index_name)
    for dialect in ("sqlite", "postgresql"):
        index.dialect_options[dialect]["where"] = None


@pytest.fixture(scope="module")
def migrated_feeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A feeds database at head, shared by the drift cases (they only read it)."""
    engine = fresh_engine(f"sqlite:///{tmp_path_factory.mktemp('drift') / 'feeds.db'}")
    command.upgrade(alembic_config("feeds", engine), "head")
    yield engine
    engine.dispose()


@pytest.mark.parametrize("case", sorted(DRIFT))
def test_comparison_catches_drift(case: str, migrated_feeds: Engine) -> None:
    mutate, *expected = DRIFT[case]
    changed = sa.MetaData()
    for table in DECLARED["feeds"].sorted_tables:
        table.to_metadata(changed)
    mutate(changed)
    problems = mismatch_report(migrated_feeds, changed)
    # Exactly the expected reports: nothing missed, and nothing else in the copy differs.
    assert len(problems) == len(expected), problems
    assert all(any(part in problem for problem in problems) for part in expected), problems


def test_rebuilding_a_parent_table_keeps_its_children(
    tmp_path: Path, engines: Callable[[str], Engine]
) -> None:
    """SQLite batch mode rebuilds a table by copy, drop, rename; with foreign keys
    enforced the drop would cascade and empty the consent log (subscribers 0002's
    downgrade rebuilds the subscribers table). PostgreSQL alters tables in place."""
    engine = engines(f"sqlite:///{tmp_path / 'subscribers.db'}")
    config = alembic_config("subscribers", engine)
    command.upgrade(config, "head")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (id, email, email_key, name, language, status,"
                " created_at, updated_at, requested_at, manage_key) VALUES (1, 'a@example.org',"
                " 'a@example.org', '', 'de', 'confirmed', :now, :now, :now, 'k')"
            ),
            {"now": "2026-12-02 10:00:00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO consent_events (subscriber_id, action, occurred_at)"
                " VALUES (1, 'signup', :now)"
            ),
            {"now": "2026-12-02 10:00:00"},
        )
    command.downgrade(config, "0001")
    command.upgrade(config, "head")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM consent_events")).scalar_one() == 1
        # Enforcement is back on for the connections the pool hands out afterwards.
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
