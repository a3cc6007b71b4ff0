"""psycopg 3 and asyncpg through pgate, unmodified: prepared statements, transactions,
COPY in and out, a denied statement followed by a normal one, a cancel, LISTEN/NOTIFY;
psycopg also in pipeline mode and with a server-side cursor.

Run by dataplane/tests/drivers.rs with PGATE_HOST, PGATE_PORT, PGATE_DB, PGATE_TOKEN and
PGATE_TAG (unique per run). Exits non-zero with the failing check's message."""
import asyncio
import faulthandler
faulthandler.dump_traceback_later(120, exit=True)
import os
import sys
import threading
import time

import asyncpg
import psycopg
from psycopg import errors

HOST, PORT, DB = os.environ["PGATE_HOST"], int(os.environ["PGATE_PORT"]), os.environ["PGATE_DB"]
TOKEN, TAG = os.environ["PGATE_TOKEN"], os.environ["PGATE_TAG"]


def step(what):
    print(f"-- {what}", file=sys.stderr, flush=True)


def check(cond, what):
    step(what)
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def psycopg_checks():
    tag = f"{TAG}-psycopg"
    conninfo = f"host={HOST} port={PORT} dbname={DB} user=analyst password={TOKEN} sslmode=disable"
    with psycopg.connect(conninfo, autocommit=True) as c:
        # Prepared statements (psycopg prepares after repeated use; prepare=True forces it).
        for i in (1, 2, 1):
            row = c.execute("select name from customers where id = %s", (i,), prepare=True).fetchone()
            check(row is not None, "prepared select returns a row")
        # Transactions: a rollback leaves nothing, a commit keeps the row.
        with c.transaction(force_rollback=True):
            c.execute("insert into events(payload) values (%s)", (tag,))
        check(c.execute("select count(*) from events where payload = %s", (tag,)).fetchone()[0] == 0, "rollback")
        with c.transaction():
            c.execute("insert into events(payload) values (%s)", (tag,))
        check(c.execute("select count(*) from events where payload = %s", (tag,)).fetchone()[0] == 1, "commit")
        # COPY in and out.
        with c.cursor().copy("copy events(payload) from stdin") as cp:
            for i in range(5):
                cp.write_row((f"{tag}-copy",))
        out = []
        with c.cursor().copy(f"copy (select payload from events where payload = '{tag}-copy') to stdout") as cp:
            for row in cp.rows():
                out.append(row)
        check(len(out) == 5, f"copy out returned {len(out)} rows")
        # A denied statement, then a normal one on the same connection.
        try:
            c.execute("select ssn from customers")
            check(False, "denied statement ran")
        except errors.InsufficientPrivilege as e:
            check("pgate" in str(e), f"the denial names pgate: {e}")
        check(c.execute("select 1").fetchone()[0] == 1, "session usable after a denial")
        # Inside a transaction the denial fails the transaction, as PostgreSQL's own error.
        try:
            with c.transaction():
                c.execute("insert into events(payload) values (%s)", (tag + "-tx",))
                c.execute("select ssn from customers")
        except errors.InsufficientPrivilege:
            pass
        check(c.execute("select count(*) from events where payload = %s", (tag + "-tx",)).fetchone()[0] == 0,
              "a denial rolls back its transaction")
        # Pipeline mode.
        with c.pipeline():
            a = c.execute("select %s::int", (1,))
            b = c.execute("select name from customers where id = %s", (2,))
        check(a.fetchone()[0] == 1 and b.fetchone() is not None, "pipeline mode")
        # LISTEN / NOTIFY.
        c.execute("listen pgate_drivers")
        c.execute("notify pgate_drivers, 'hello'")
        got = [n.payload for n in c.notifies(timeout=5, stop_after=1)]
        check(got == ["hello"], f"notification: {got}")
    # A server-side cursor (DECLARE … FETCH) needs a transaction.
    with psycopg.connect(conninfo) as c:
        with c.cursor(name="pgate_cur") as cur:
            cur.execute("select id from customers order by id")
            check(len(cur.fetchmany(1)) == 1 and len(cur.fetchall()) >= 1, "server-side cursor")
        c.rollback()
    # A cancel.
    with psycopg.connect(conninfo, autocommit=True) as c:
        threading.Timer(0.5, c.cancel_safe if hasattr(c, "cancel_safe") else c.cancel).start()
        t = time.time()
        try:
            c.execute("select pg_sleep(20)")
            check(False, "pg_sleep was not cancelled")
        except errors.QueryCanceled:
            pass
        check(time.time() - t < 10, "the cancel reached the backend")
        check(c.execute("select 1").fetchone()[0] == 1, "session usable after a cancel")


async def asyncpg_checks():
    tag = f"{TAG}-asyncpg"
    c = await asyncpg.connect(host=HOST, port=PORT, database=DB, user="analyst", password=TOKEN, ssl=False)
    try:
        stmt = await c.prepare("select name from customers where id = $1")
        check(await stmt.fetchval(1) is not None, "prepared statement")
        try:
            async with c.transaction():
                await c.execute("insert into events(payload) values ($1)", tag)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        check(await c.fetchval("select count(*) from events where payload = $1", tag) == 0, "rollback")
        async with c.transaction():
            await c.execute("insert into events(payload) values ($1)", tag)
        check(await c.fetchval("select count(*) from events where payload = $1", tag) == 1, "commit")
        await c.copy_records_to_table("events", records=[(f"{tag}-copy",)] * 4, columns=["payload"])
        import io
        buf = io.BytesIO()
        await c.copy_from_query(f"select payload from events where payload = '{tag}-copy'", output=buf)
        check(buf.getvalue().count(b"\n") == 4, "copy out")
        try:
            await c.fetch("select ssn from customers")
            check(False, "denied statement ran")
        except asyncpg.exceptions.InsufficientPrivilegeError:
            pass
        check(await c.fetchval("select 1") == 1, "session usable after a denial")
        got = asyncio.get_running_loop().create_future()
        await c.add_listener("pgate_drivers_a", lambda *args: got.done() or got.set_result(args[3]))
        await c.execute("notify pgate_drivers_a, 'hi'")
        check(await asyncio.wait_for(got, 5) == "hi", "notification")
        # A cancel: asyncpg cancels a query whose task is cancelled (wait_for timeout).
        t = time.time()
        try:
            await asyncio.wait_for(c.fetch("select pg_sleep(20)"), 0.5)
            check(False, "pg_sleep was not cancelled")
        except asyncio.TimeoutError:
            pass
        check(await c.fetchval("select 2") == 2, "session usable after a cancel")
        check(time.time() - t < 10, "the cancel reached the backend")
    finally:
        await c.close()


psycopg_checks()
asyncio.run(asyncpg_checks())
print("ok")
