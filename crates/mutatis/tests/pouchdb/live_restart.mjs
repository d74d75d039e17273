// Scenario 3: live sync (`live: true, retry: true`) keeps working across a SIGKILL and a
// restart of the node on the same data and port, and loses or duplicates no revision.
import { local, remote, eq, check, until, harness, done, tolerateNetworkRejections } from './lib.mjs';

const rejections = tolerateNetworkRejections();

const W = process.env.WRITER;
const app = local('live');
const rem = remote(5, W);
const other = local('other');
const errors = [];
const h = app.sync(rem, { live: true, retry: true, back_off_function: () => 300 });
h.on('error', (e) => errors.push(e));
const h2 = other.sync(remote(5, W), { live: true, retry: true, back_off_function: () => 300 });

const N = 12;
async function edit(i) {
  const id = `todo:live${i}`;
  let d;
  try {
    d = await app.get(id);
  } catch {
    d = { _id: id, title: `item ${i}`, status: 'open', important: false };
  }
  d.title = `${d.title}+`;
  await app.put(d);
}

// A writer that keeps editing while the node is killed under it: requests are in flight
// when it dies.
let writing = true;
const writer = (async () => {
  for (let round = 0; writing; round++) {
    await edit(round % N);
    await new Promise((r) => setTimeout(r, 20));
  }
})();
await until(async () => (await rem.allDocs()).rows.length >= N / 2, 30000, 'the first writes reach the node');
await harness('kill-restart-begin');
// The node is down: the app keeps editing offline.
await new Promise((r) => setTimeout(r, 500));
await harness('kill-restart-end');
await new Promise((r) => setTimeout(r, 500));
writing = false;
await writer;
for (let i = N; i < 2 * N; i++) {
  await edit(i);
}
// A write by another app after the restart reaches this one live.
await other.put({ _id: 'todo:fromother', title: 'hello', status: 'open', important: false });

const expectRevs = async () => {
  const mine = await app.allDocs();
  const theirs = await rem.allDocs();
  const m = Object.fromEntries(mine.rows.map((r) => [r.id, r.value.rev]));
  const t = Object.fromEntries(theirs.rows.map((r) => [r.id, r.value.rev]));
  return JSON.stringify(m) === JSON.stringify(t) && Object.keys(m).length === 2 * N + 1;
};
await until(expectRevs, 60000, 'the app and the node converge');
await until(async () => (await other.allDocs()).rows.length === 2 * N + 1, 60000, 'the other app converges');

// No revision lost or duplicated: each document's history is the app's, generation by
// generation, and the node's feed lists each document once.
for (let i = 0; i < 2 * N; i++) {
  const id = `todo:live${i}`;
  const mine = await app.get(id, { revs: true });
  const theirs = await rem.get(id, { revs: true });
  eq(theirs._revisions, mine._revisions, `${id}'s history`);
  eq(mine._revisions.ids.length, mine._revisions.start, `${id}'s whole history travelled`);
  if (i >= N) {
    eq(mine._revisions.start, 1, `${id}'s generation`);
  }
  check(!mine._conflicts, `${id} has no conflict`);
}
const feed = await rem.changes({ since: 0 });
const ids = feed.results.map((r) => r.id);
eq(new Set(ids).size, ids.length, 'each document once in the feed');
eq(ids.length, 2 * N + 1, 'every document in the feed');
h.cancel();
h2.cancel();
console.log(`while the node was down: ${errors.length} sync errors, ${rejections()} network rejections PouchDB left unhandled`);
done();
