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
done();
