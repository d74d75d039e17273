// PouchDB 9 pulling and pushing N documents through mutatis's CouchDB endpoint, side by side
// in one run:
//   - through release 4 of examples/todo (todo@2: every document translated, up on a push
//     with conservation, down on a pull),
//   - through release 5 (todo@3, the storage version: nothing to translate),
//   - and the same documents replicated node to node by `mutatis replicate`
//     (`GET /replication/changes` + `POST /replication/apply`, mutatis's own protocol).
//
// Usage (from the repository root, after `npm ci` and a release build):
//   cargo build --release -p mutatis
//   node benches/pouchdb/bench.mjs [--docs 10000] [--rounds 3] [--mutatis target/release/mutatis]
//
// Each round starts fresh nodes (redb, in a temporary folder) so that every push lands on an
// empty store; the pulls read from the node the release-5 push filled. Prints a Markdown table
// of each scenario's median round.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import PouchDB from 'pouchdb';
import memoryAdapter from 'pouchdb-adapter-memory';

PouchDB.plugin(memoryAdapter);

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] ? process.argv[at + 1] : fallback;
}
const DOCS = Number(option('docs', '10000'));
const ROUNDS = Number(option('rounds', '3'));
const MUTATIS = resolve(option('mutatis', 'target/release/mutatis'));
const SET = resolve('examples/todo');
const TOKEN = 'mutatis_' + '0123456789abcdef'.repeat(4);
const BATCH = 500;

/** Starts `mutatis serve examples/todo` on a fresh redb file; resolves to { url, stop }. */
function startNode() {
  const dir = mkdtempSync(join(tmpdir(), 'mutatis-pouch-bench-'));
  const child = spawn(
    MUTATIS,
    ['serve', SET, '--data', join(dir, 'todo.redb'), '--listen', '127.0.0.1:0',
      '--reference-date', '2026-12-01'],
    { env: { ...process.env, MUTATIS_ADMIN_TOKEN: TOKEN, RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = line.match(/ at (http:\/\/\S+)/);
      if (m) {
        ok({
          url: m[1],
          stop: () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); },
        });
      }
    });
    child.on('exit', (code) => fail(new Error(`mutatis serve exited with ${code}`)));
  });
}

function remote(node, release) {
  return new PouchDB(`${node.url}/couch/${release}`, {
    skip_setup: true,
    fetch: (url, opts) => {
      opts.headers.set('Authorization', `Bearer ${TOKEN}`);
      return PouchDB.fetch(url, opts);
    },
  });
}

let dbCount = 0;
function local() {
  dbCount += 1;
  return new PouchDB(`bench-${dbCount}`, { adapter: 'memory' });
}

/** The same N todos in todo@2 (release 4) or todo@3 (release 5) shape. */
function todo(i, release) {
  const title = `todo number ${i}`;
  const important = i % 7 === 0;
  if (release === '4') return { _id: `todo:t${i}`, title, done: i % 2 === 0, important };
  return { _id: `todo:t${i}`, title, status: i % 2 === 0 ? 'done' : 'open', important };
}

async function filled(release) {
  const db = local();
  for (let i = 0; i < DOCS; i += BATCH) {
    const docs = [];
    for (let j = i; j < Math.min(i + BATCH, DOCS); j += 1) docs.push(todo(j, release));
    await db.bulkDocs(docs);
  }
  return db;
}

async function timed(what, f) {
  const start = process.hrtime.bigint();
  const result = await f();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const written = result?.docs_written ?? result?.docs_read ?? DOCS;
  if (written !== DOCS) throw new Error(`${what}: ${written} documents moved, expected ${DOCS}`);
  return seconds;
}

const times = {};
function record(name, seconds) {
  (times[name] ??= []).push(seconds);
  console.error(`  ${name}: ${(DOCS / seconds).toFixed(0)} docs/s`);
}

for (let round = 1; round <= ROUNDS; round += 1) {
  console.error(`round ${round}/${ROUNDS}`);
  // Pushes, each onto an empty node; release 5 first in odd rounds, 4 first in even ones.
  const order = round % 2 ? ['5', '4'] : ['4', '5'];
  const nodes = {};
  for (const release of order) {
    const source = await filled(release);
    const node = await startNode();
    nodes[release] = node;
    record(`push through release ${release}`, await timed(`push ${release}`, () =>
      PouchDB.replicate(source, remote(node, release), { batch_size: BATCH })));
    await source.destroy();
  }
  // Pulls from the node the release-5 push filled.
  for (const release of order) {
    const target = local();
    record(`pull through release ${release}`, await timed(`pull ${release}`, () =>
      PouchDB.replicate(remote(nodes['5'], release), target,
        { batch_size: BATCH })));
    const info = await target.info();
    if (info.doc_count !== DOCS) throw new Error(`pull ${release}: ${info.doc_count} documents`);
    await target.destroy();
  }
  // The same documents node to node through mutatis's own replication protocol.
  const empty = await startNode();
  const start = process.hrtime.bigint();
  const run = spawnSync(MUTATIS, ['replicate', '--from', nodes['5'].url, '--to', empty.url,
    '--batch-size', String(BATCH), '--json'], {
    env: { ...process.env, MUTATIS_FROM_TOKEN: TOKEN, MUTATIS_TO_TOKEN: TOKEN },
    encoding: 'utf8',
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (run.status !== 0) throw new Error(`mutatis replicate: ${run.stderr}`);
  record('mutatis replicate (node to node, /replication/apply)', seconds);
  empty.stop();
  nodes['4'].stop();
  nodes['5'].stop();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (name) => DOCS / median(times[name]);
console.log(`| ${DOCS} documents, median of ${ROUNDS} rounds | docs/s | ratio (÷ the same direction through release 5) |`);
console.log('|---|--:|--:|');
for (const [name, base] of [
  ['push through release 5', 'push through release 5'],
  ['push through release 4', 'push through release 5'],
  ['pull through release 5', 'pull through release 5'],
  ['pull through release 4', 'pull through release 5'],
  ['mutatis replicate (node to node, /replication/apply)', 'pull through release 5'],
]) {
  console.log(`| ${name} | ${rate(name).toFixed(0)} | ${(rate(name) / rate(base)).toFixed(2)} |`);
}
