// node-postgres through pgate, unmodified: prepared statements, transactions, COPY in and
// out (pg-copy-streams), a denied statement followed by a normal one, a cancel,
// LISTEN/NOTIFY. Run by dataplane/tests/drivers.rs (env: PGATE_HOST, PGATE_PORT,
// PGATE_DB, PGATE_TOKEN, PGATE_TAG). Exits non-zero naming the failing check.
const { Client } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { pipeline } = require('stream/promises');
const { Readable, Writable } = require('stream');

const env = process.env;
const cfg = {
  host: env.PGATE_HOST, port: Number(env.PGATE_PORT), database: env.PGATE_DB,
  user: 'analyst', password: env.PGATE_TOKEN, ssl: false,
};
const tag = `${env.PGATE_TAG}-node`;

function check(cond, what) {
  if (!cond) { console.error(`FAILED: ${what}`); process.exit(1); }
}

async function main() {
  const c = new Client(cfg);
  await c.connect();
  // Prepared statements (named queries are prepared once per connection).
  for (const id of [1, 2, 1]) {
    const r = await c.query({ name: 'by_id', text: 'select name from customers where id = $1', values: [id] });
    check(r.rows.length === 1, 'prepared select');
  }
  await c.query('begin');
  await c.query('insert into events(payload) values ($1)', [tag]);
  await c.query('rollback');
  check((await c.query('select count(*)::int as n from events where payload = $1', [tag])).rows[0].n === 0, 'rollback');
  await c.query('begin');
  await c.query('insert into events(payload) values ($1)', [tag]);
  await c.query('commit');
  check((await c.query('select count(*)::int as n from events where payload = $1', [tag])).rows[0].n === 1, 'commit');
  // COPY in and out.
  await pipeline(Readable.from([`${tag}-copy\n`, `${tag}-copy\n`, `${tag}-copy\n`]),
    c.query(copyFrom('copy events(payload) from stdin')));
  let out = '';
  await pipeline(c.query(copyTo(`copy (select payload from events where payload = '${tag}-copy') to stdout`)),
    new Writable({ write(chunk, _e, cb) { out += chunk; cb(); } }));
  check(out.split('\n').filter(Boolean).length === 3, `copy out: ${JSON.stringify(out)}`);
  // A denied statement, then a normal one; inside a transaction it fails the transaction.
  try { await c.query('select ssn from customers'); check(false, 'denied statement ran'); }
  catch (e) { check(e.code === '42501', `denial code ${e.code}`); }
  check((await c.query('select 1 as one')).rows[0].one === 1, 'usable after a denial');
  await c.query('begin');
  try { await c.query('select ssn from customers'); } catch (e) { check(e.code === '42501', 'denied in tx'); }
  try { await c.query('select 1'); check(false, 'statement ran in a failed transaction'); }
  catch (e) { check(e.code === '25P02', `25P02 after the denial, got ${e.code}`); }
  const end = await c.query('commit');
  check(end.command === 'ROLLBACK', `COMMIT of a failed transaction is ${end.command}`);
  // LISTEN / NOTIFY.
  const got = new Promise((resolve) => c.on('notification', (m) => resolve(m.payload)));
  await c.query('listen pgate_drivers_n');
  await c.query("notify pgate_drivers_n, 'yo'");
  check(await Promise.race([got, new Promise((r) => setTimeout(() => r('timeout'), 5000))]) === 'yo', 'notification');
  await c.end();
  // A cancel (node-postgres sends a CancelRequest with the key pgate issued).
  const k = new Client(cfg);
  await k.connect();
  const t = Date.now();
  setTimeout(() => {
    const canceller = new Client(cfg);
    canceller.cancel(k, k.activeQuery);
  }, 500);
  try { await k.query('select pg_sleep(20)'); check(false, 'not cancelled'); }
  catch (e) { check(e.code === '57014', `cancel code ${e.code}`); }
  check(Date.now() - t < 10000, 'the cancel reached the backend');
  await k.end();
  console.log('ok');
}

main().catch((e) => { console.error(`FAILED: ${e.stack || e}`); process.exit(1); });
