// Scenario 5: the months-offline case. A release-4 app queues edits offline while the node
// gains todo@4 and release 6 and release 4 becomes deprecated; it comes back, its edits land
// without erasing release 5's status or release 6's due date. Past release 4's sunset it is
// refused with `unsupported_release`, and its local documents are still there.
import { local, remote, sync, eq, check, api, harness, done } from './lib.mjs';

const W = process.env.WRITER;
const app5 = local('app5');
const app4 = local('app4');
await app5.put({ _id: 'todo:m1', title: 'renew passport', status: 'started', important: false });
await app5.put({ _id: 'todo:m2', title: 'book flights', status: 'open', important: false });
await sync(app5, remote(5, W));
await sync(app4, remote(4, W));
eq((await api('/couch/4/', W)).headers.get('deprecation'), null, 'release 4 is not deprecated yet');

// Offline for months: a queued edit.
const m1 = await app4.get('todo:m1');
m1.title = 'renew passport (photos done)';
await app4.put(m1);

await harness('deploy-release-6');
// A release-6 app gives m2 a due date release 4 never heard of.
const app6 = local('app6');
await sync(app6, remote(6, W));
const m2 = await app6.get('todo:m2');
eq(m2.due, '', 'todo@4 has a due date');
m2.due = '2027-01-15';
await app6.put(m2);
await sync(app6, remote(6, W));

// The release-4 app comes back.
const info = await api('/couch/4/', W);
check(info.headers.get('deprecation') !== null, 'release 4 is deprecated now');
check(info.headers.get('sunset') !== null, 'with a sunset');
await sync(app4, remote(4, W));
const n1 = (await api('/docs/todo/m1?release=5')).body;
eq([n1.title, n1.status], ['renew passport (photos done)', 'started'], 'the queued edit landed, status kept');
// It edits m2, whose due date it cannot see.
const b2 = await app4.get('todo:m2');
check(!('due' in b2) && !('status' in b2), 'release 4 sees todo@2');
b2.important = true;
await app4.put(b2);
await sync(app4, remote(4, W));
await sync(app6, remote(6, W));
const s2 = await app6.get('todo:m2');
eq([s2.important, s2.due, s2.status], [true, '2027-01-15', 'open'], 'the release-4 edit kept the due date');
eq((await app6.get('todo:m1')).title, 'renew passport (photos done)', 'release 6 sees the queued edit');

await harness('past-sunset');
const late = await app4.get('todo:m2');
late.title = 'book flights (late)';
await app4.put(late);
let refused = null;
try {
  await app4.sync(remote(4, W));
} catch (e) {
  refused = e;
}
check(refused !== null, 'the retired release is refused');
eq([refused.status, refused.name], [400, 'unsupported_release'], 'with a status and name the app can act on');
const kept = await app4.allDocs({ include_docs: true });
eq(kept.rows.map((r) => r.id), ['todo:m1', 'todo:m2'], 'its documents are still there');
eq(kept.rows[1].doc.title, 'book flights (late)', 'its last edit too');
done();
