// Scenario 2: concurrent offline edits in a release-5 and a release-4 app become a conflict
// with the same winner in both PouchDBs and on the node; resolving it in one app ends it
// everywhere.
import { local, remote, sync, eq, check, api, winner, done } from './lib.mjs';

const W = process.env.WRITER;
const a = local('a5');
const b = local('b4');
const ra = remote(5, W);
const rb = remote(4, W);

await a.put({ _id: 'todo:c', title: 'plan trip', status: 'open', important: false });
await sync(a, ra);
await sync(b, rb);

// Offline: both edit.
const da = await a.get('todo:c');
da.title = 'plan trip to Rome';
await a.put(da);
const db = await b.get('todo:c');
db.title = 'plan trip to Oslo';
db.important = true;
await b.put(db);

await sync(a, ra);
await sync(b, rb);
await sync(a, ra);

const wa = await winner(a, 'todo:c');
const wb = await winner(b, 'todo:c');
eq(wa.rev, wb.rev, 'both apps pick the same winner');
eq(wa.conflicts, wb.conflicts, 'and the same losers');
eq(wa.conflicts.length, 1, 'one conflict');
const node = await api('/docs/todo/c/conflicts?release=5');
eq(node.body.rev, wa.rev, 'the node picks the same winner');
eq(node.body.conflicts.filter((c) => !c.deleted).map((c) => c.rev).sort(), wa.conflicts, 'the node has the same loser');

// Resolve in app A: keep the winner, remove the losers.
for (const rev of wa.conflicts) {
  await a.remove('todo:c', rev);
}
await sync(a, ra);
await sync(b, rb);
const ra2 = await winner(a, 'todo:c');
const rb2 = await winner(b, 'todo:c');
eq([ra2.conflicts, rb2.conflicts], [[], []], 'no conflict left in either app');
eq(ra2.rev, rb2.rev, 'the same document in both');
const after = await api('/docs/todo/c/conflicts?release=5');
eq(after.body.conflicts.filter((c) => !c.deleted), [], 'no live conflict left on the node');
eq(after.body.rev, ra2.rev, 'the node agrees');
check(true, '');
done();
