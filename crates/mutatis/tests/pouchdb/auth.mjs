// Scenario 4: reader and writer tokens and a per-document policy hold through PouchDB: a
// reader pulls but its push fails; a document only alice may read never reaches bob's app.
import { local, remote, eq, check, api, done } from './lib.mjs';

const { READER, BOB, ALICE } = process.env;

// The reader pulls.
const r = local('reader');
const pulled = await r.replicate.from(remote(5, READER, 'rita'));
eq(pulled.errors, [], 'the reader pulls');
check((await r.allDocs()).rows.some((row) => row.id === 'todo:public'), 'the reader has the public document');
check(!(await r.allDocs()).rows.some((row) => row.id === 'todo:secret'), 'not the secret one');
// Its push fails.
await r.put({ _id: 'todo:byreader', title: 'no', status: 'open', important: false });
let failed = null;
try {
  const res = await r.replicate.to(remote(5, READER, 'rita'));
  if (res.doc_write_failures > 0 || res.errors.length > 0) {
    failed = res;
  }
} catch (e) {
  failed = e;
}
check(failed !== null, 'the reader push failed');
eq((await api('/docs/todo/byreader?release=5')).status, 404, 'nothing the reader pushed is on the node');

// Bob never sees alice's document, live or not.
const b = local('bob');
eq((await b.replicate.from(remote(5, BOB, 'bob'))).errors, [], 'bob pulls');
const bobIds = (await b.allDocs()).rows.map((row) => row.id);
check(bobIds.includes('todo:public') && !bobIds.includes('todo:secret'), `bob's ids: ${bobIds}`);
const a = local('alice');
eq((await a.replicate.from(remote(5, ALICE, 'alice'))).errors, [], 'alice pulls');
check((await a.allDocs()).rows.some((row) => row.id === 'todo:secret'), 'alice has her document');
// Alice edits it; bob syncs again and still does not see it.
const s = await a.get('todo:secret');
s.title = 'still secret';
await a.put(s);
eq((await a.replicate.to(remote(5, ALICE, 'alice'))).errors, [], 'alice pushes');
eq((await b.replicate.from(remote(5, BOB, 'bob'))).errors, [], 'bob pulls again');
check(!(await b.allDocs()).rows.some((row) => row.id === 'todo:secret'), 'bob still lacks it');
eq((await api('/docs/todo/secret?release=5')).body.title, 'still secret', 'the node has alice\'s edit');
// A writer's push works.
await b.put({ _id: 'todo:bybob', title: 'yes', status: 'open', important: false });
const pushed = await b.replicate.to(remote(5, BOB, 'bob'));
eq(pushed.docs_written, 1, 'bob pushes');
done();
