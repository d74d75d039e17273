// Shared helpers of the PouchDB scenarios: run by `crates/mutatis/tests/pouchdb.rs` with
// the node's URL and tokens in the environment. Each scenario exits non-zero on the first
// failed check.
import PouchDB from 'pouchdb';
import memory from 'pouchdb-adapter-memory';
import readline from 'node:readline';

PouchDB.plugin(memory);

export const URL = process.env.MUTATIS_URL;
export const ADMIN = process.env.MUTATIS_ADMIN;

let seq = 0;

/** An app's local database (memory adapter), fresh. */
export function local(name) {
  seq += 1;
  return new PouchDB(`${name}-${process.pid}-${seq}`, { adapter: 'memory' });
}

/** The node's database for `release`, as a PouchDB app configures it: HTTP Basic with the
 * token as the password. */
export function remote(release, token, user = 'app') {
  return new PouchDB(`${URL}/couch/${release}`, { auth: { username: user, password: token } });
}

export function check(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
}

export function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) {
    throw new Error(`check failed: ${what}: got ${g}, want ${w}`);
  }
}

/** One-shot two-way sync; fails on any replication error. */
export async function sync(app, rem) {
  const res = await app.sync(rem);
  eq(res.push.errors, [], 'push errors');
  eq(res.pull.errors, [], 'pull errors');
  return res;
}

/** GET a path of the node's own API with a bearer token. */
export async function api(path, token = ADMIN, init = {}) {
  const headers = { authorization: `Bearer ${token}`, ...(init.headers || {}) };
  const r = await fetch(`${URL}${path}`, { ...init, headers });
  const text = await r.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: r.status, headers: r.headers, body };
}

/** A doc's winner and live conflicts in `db`. */
export async function winner(db, id) {
  const d = await db.get(id, { conflicts: true });
  return { rev: d._rev, conflicts: (d._conflicts || []).slice().sort(), doc: d };
}

/** Whether `db` has no live `id`. */
export async function gone(db, id) {
  try {
    await db.get(id);
    return false;
  } catch (e) {
    return e.status === 404;
  }
}

/** Poll `cond` until true or `ms` pass. */
export async function until(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) {
      return;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for: ${what}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Ask the Rust harness to do something to the node (`kill-restart`, …) and wait until it
 * says it is done. */
export async function harness(command) {
  console.log(`CMD ${command}`);
  const { value, done } = await lines.next();
  check(!done && value.trim() === 'ok', `the harness did ${command}: ${value}`);
}

export function done() {
  console.log('PASS');
  process.exit(0);
}

let networkRejections = 0;
let tolerateNetwork = false;

/** While the node is down on purpose, PouchDB's live replication leaves some of its own
 * failed requests' promises unhandled (it retries them itself): count those instead of
 * failing. Any other unhandled rejection still fails the scenario. */
export function tolerateNetworkRejections() {
  tolerateNetwork = true;
  return () => networkRejections;
}

process.on('unhandledRejection', (e) => {
  const network = e && (e.name === 'FetchError' || e.type === 'system') &&
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(e.code);
  if (tolerateNetwork && network) {
    networkRejections += 1;
    return;
  }
  console.error('FAIL', e);
  process.exit(1);
});
