"""The few statements every slave call runs, without compiling a queryset each time.

Compiling a queryset costs Django more than the database takes to answer it (half a millisecond
for a plain lookup, several for one with subqueries; a ``save()`` as much: bench/claims.py). The
claim path's hot statements are written out once (in the module that uses them) and their rows
made into instances here, with the column converters the ORM applies, so a JSON field is a dict and
a SQLite date a datetime as anywhere else; :func:`update` and :func:`insert` write what
``save(update_fields=...)`` and ``create()`` write, with each field's own preparation (no model
signals: nothing listens to these models'). Everything else uses the ORM.

On PostgreSQL they are bound on the server and prepared (once per connection: psycopg keeps the
last hundred; :mod:`autotua_master.postgresql`), so PostgreSQL stops parsing and planning them on every call: the
claim's and the result's statements are long, and planning them cost the database several times
what running them does (0.86 ms to plan the claim's pick, 0.13 ms to run it).
"""

from __future__ import annotations

import functools

from django.db import DEFAULT_DB_ALIAS, connection, connections, models


@functools.cache
def _fields(model: type[models.Model]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    fields = model._meta.concrete_fields
    return tuple(f.attname for f in fields), tuple(f.column for f in fields)


@functools.cache
def columns(model: type[models.Model], alias: str | None = None) -> str:
    """``"alias"."col", ...`` for every concrete field of ``model`` (in :func:`build`'s order)."""
    table = connection.ops.quote_name(alias or model._meta.db_table)
    return ", ".join(f"{table}.{connection.ops.quote_name(c)}" for c in _fields(model)[1])


def width(model: type[models.Model]) -> int:
    return len(_fields(model)[0])


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> tuple:
    """(position, column expression, its converters) of each field that has any: what the ORM's compiler
    applies to its value (most fields have none)."""
    db = connections[DEFAULT_DB_ALIAS]
    out = []
    for i, f in enumerate(model._meta.concrete_fields):
        col = f.get_col(model._meta.db_table)
        convs = tuple(db.ops.get_db_converters(col) + f.get_db_converters(db))
        if convs:
            out.append((i, col, convs))
    return tuple(out)


def build(model: type[models.Model], values) -> models.Model:
    """An instance of ``model`` from its columns' raw values (``columns()`` order), as the ORM makes it."""
    db = connections[DEFAULT_DB_ALIAS]
    names = _fields(model)[0]
    if len(values) != len(names):
        raise ValueError(f"{model.__name__} has {len(names)} columns, not {len(values)}")
    values = list(values)
    for i, col, convs in _converters(model, db.vendor):
        value = values[i]
        for conv in convs:
            value = conv(value, col, db)
        values[i] = value
    return model.from_db(DEFAULT_DB_ALIAS, names, values)


def _execute(sql: str, params, fetch):
    """Run ``sql``; ``fetch(cursor)`` its rows. Prepared on PostgreSQL (:mod:`autotua_master.postgresql`)."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each attribute of django.db.connection is a lookup
    run = getattr(db, "execute_prepared", None)
    if run is not None:
        return fetch(run(sql, params))
    with db.cursor() as c:
        c.execute(sql, params)
        return fetch(c)


def _nothing(cursor) -> None:
    return None


def one(sql: str, params) -> tuple | None:
    return _execute(sql, params, lambda c: c.fetchone())


def all_rows(sql: str, params) -> list[tuple]:
    return _execute(sql, params, lambda c: c.fetchall())


@functools.cache
def _update_sql(model: type[models.Model], fields: tuple[str, ...]) -> tuple[str, tuple]:
    meta = model._meta
    cols = tuple(meta.get_field(f) for f in fields)
    q = connection.ops.quote_name
    sets = ", ".join(f"{q(f.column)} = %s" for f in cols)
    return f"UPDATE {q(meta.db_table)} SET {sets} WHERE {q(meta.pk.column)} = %s", cols


def _update_statement(obj: models.Model, fields: tuple[str, ...], db) -> tuple[str, list]:
    sql, cols = _update_sql(type(obj), fields)
    return sql, [f.get_db_prep_save(getattr(obj, f.attname), db) for f in cols] + [obj.pk]


def update(obj: models.Model, *fields: str) -> None:
    """Write ``fields`` of ``obj`` (as ``obj.save(update_fields=fields)`` does)."""
    _execute(*_update_statement(obj, fields, connections[DEFAULT_DB_ALIAS]), _nothing)


def update_together(*writes: tuple[models.Model, tuple[str, ...]], new: models.Model | None = None) -> None:
    """:func:`update` of each ``(obj, fields)``, and first the :func:`insert` of ``new`` if given: on
    PostgreSQL in one statement (data-modifying CTEs), elsewhere one after the other. The rows must be
    different ones."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or len(writes) + (new is not None) == 1:
        if new is not None:
            insert(new)
        for obj, fields in writes:
            update(obj, *fields)
        return
    parts, params = [], []
    if new is not None:
        sql, values = _insert_statement(new, db)
        parts.append(("i", sql))
        params += values
    for n, (obj, fields) in enumerate(writes):
        sql, values = _update_statement(obj, tuple(fields), db)
        parts.append((f"w{n}", sql))
        params += values
    if new is None:  # the last update is the statement itself
        ctes, last = parts[:-1], parts[-1][1]
    else:  # every update a CTE; the statement answers the new row's key
        ctes, last = parts, f"SELECT i.{db.ops.quote_name(new._meta.pk.column)} FROM i"
    sql = ("WITH " + ", ".join(f"{name} AS ({sql})" for name, sql in ctes) + " " if ctes else "") + last
    if new is None:
        _execute(sql, params, _nothing)
    else:
        _inserted(new, one(sql, params)[0])


@functools.cache
def _insert_sql(model: type[models.Model]) -> tuple[str, tuple]:
    meta = model._meta
    cols = tuple(f for f in meta.concrete_fields if not f.primary_key)
    q = connection.ops.quote_name
    return (f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in cols)}) "
            f"VALUES ({', '.join(['%s'] * len(cols))}) RETURNING {q(meta.pk.column)}"), cols


def insert_select(obj: models.Model, source: str, returning: tuple[str, ...] = (),
                  **from_source: str) -> tuple[str, list]:
    """``INSERT INTO <obj's table> (...) SELECT ... FROM <source> RETURNING <pk>`` and its parameters: the
    new ``obj``'s values, except the columns named in ``from_source`` (column -> an SQL expression on
    ``source``, such as a CTE's row). One statement where the row depends on one just written;
    ``returning``: columns it answers after the key."""
    _, cols = _insert_sql(type(obj))
    db = connections[DEFAULT_DB_ALIAS]
    q = db.ops.quote_name
    values, params = [], []
    for f in cols:
        if f.column in from_source:
            values.append(from_source[f.column])
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(f.pre_save(obj, True), db))
    meta = type(obj)._meta
    answers = ", ".join(q(c) for c in (meta.pk.column, *returning))
    return (f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in cols)}) "
            f"SELECT {', '.join(values)} FROM {source} RETURNING {answers}"), params


def _insert_statement(obj: models.Model, db) -> tuple[str, list]:
    sql, cols = _insert_sql(type(obj))
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), db) for f in cols]


def _inserted(obj: models.Model, pk) -> models.Model:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
    return obj


def insert(obj: models.Model) -> models.Model:
    """Store the new ``obj`` (as ``Model.objects.create()`` does) and set its primary key."""
    return _inserted(obj, one(*_insert_statement(obj, connections[DEFAULT_DB_ALIAS]))[0])
