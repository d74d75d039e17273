// Scenario 1: a release-5 app and a release-4 app sync with one node. Each sees the other's
// edits in its own version; a release-4 edit keeps release 5's status; deletes replicate.
import { local, remote, sync, eq, check, gone, api, done } from './lib.mjs';

const W = process.env.WRITER;
const app5 = local('app5');
const app4 = local('app4');
const r5 = remote(5, W);
const r4 = remote(4, W);

await app5.put({ _id: 'todo:1', title: 'buy milk', status: 'started', important: true });
await app5.put({ _id: 'todo:2', title: 'call mum', status: 'open', important: false });
await sync(app5, r5);
await sync(app4, r4);

// Release 4 sees todo@2: a done flag, no status.
const d4 = await app4.get('todo:1');
eq([d4.title, d4.done, d4.important, 'status' in d4], ['buy milk', false, true, false], 'todo:1 in release 4');

// A release-4 edit that cannot see the status keeps it.
d4.title = 'buy oat milk';
d4.important = false;
await app4.put(d4);
// A release-4 app creates one too.
await app4.put({ _id: 'todo:3', title: 'water plants', done: true, important: true });
await sync(app4, r4);
await sync(app5, r5);
const d5 = await app5.get('todo:1');
eq([d5.title, d5.status, d5.important], ['buy oat milk', 'started', false], 'todo:1 in release 5 after the release-4 edit');
eq(d5._rev, (await app4.get('todo:1'))._rev, 'one rev on both sides');
const n3 = await app5.get('todo:3');
eq([n3.status, n3.important, 'done' in n3], ['done', true, false], 'a release-4 create in release 5');
const onNode = await api('/docs/todo/1?release=5');
eq(onNode.body.status, 'started', 'the node kept the status');

// Release 5 edits, release 4 sees them as its version says.
const e5 = await app5.get('todo:2');
e5.status = 'done';
await app5.put(e5);
await sync(app5, r5);
await sync(app4, r4);
eq((await app4.get('todo:2')).done, true, 'status done is done=true in release 4');

// Deletes replicate both ways.
await app5.remove(await app5.get('todo:2'));
await app4.remove(await app4.get('todo:3'));
await sync(app5, r5);
await sync(app4, r4);
await sync(app5, r5);
check(await gone(app4, 'todo:2'), 'the release-5 delete reached release 4');
check(await gone(app5, 'todo:3'), 'the release-4 delete reached release 5');
eq((await api('/docs/todo/2?release=5')).status, 404, 'deleted on the node');

// Plain remote use of the node's database.
const rem = remote(5, W);
const info = await rem.info();
eq(info.db_name, '5', 'info');
const p = await rem.put({ _id: 'todo:r1', title: 'remote', status: 'open', important: false });
check(p.ok && p.rev.startsWith('1-'), 'remote put');
eq((await rem.get('todo:r1')).title, 'remote', 'remote get');
const bulk = await rem.bulkDocs([
  { _id: 'todo:r2', title: 'r2', status: 'open', important: false },
  { _id: 'todo:r1', title: 'stale', status: 'open', important: false },
]);
check(bulk[0].ok, `bulkDocs stores a new document: ${JSON.stringify(bulk[0])}`);
eq(bulk[1].name, 'conflict', 'bulkDocs reports a conflict');
const range = await rem.allDocs({ startkey: 'todo:r', endkey: 'todo:r\ufff0', include_docs: true });
eq(range.rows.map((r) => r.id), ['todo:r1', 'todo:r2'], 'allDocs by range');
eq(range.rows[0].doc.title, 'remote', 'allDocs with documents');
const byKeys = await rem.allDocs({ keys: ['todo:r2', 'todo:nope'] });
eq([byKeys.rows[0].id, byKeys.rows[1].error], ['todo:r2', 'not_found'], 'allDocs by keys');
const feed = await rem.changes({ since: 0, include_docs: true });
check(feed.results.some((c) => c.id === 'todo:r2' && c.doc.title === 'r2'), 'remote changes');
await rem.remove(await rem.get('todo:r2'));
let missing = null;
try {
  await rem.get('todo:r2');
} catch (e) {
  missing = e;
}
eq([missing.status, missing.name], [404, 'not_found'], 'a deleted document is not found');
// The release-4 view of a remote write.
eq((await remote(4, W).get('todo:r1')).done, false, 'release 4 reads the remote write');
done();
