// A todo list for release 4 of examples/todo, offline first.
//
// The todos live in this browser (PouchDB over IndexedDB, database `web-todo`) and sync both
// ways, live, with the mutatis node's CouchDB-compatible endpoint for release 4
// (`SERVER/couch/4`). Each todo is a CouchDB document `todo:ID` (type, colon, id) whose body
// is a release-4 todo (`todo@2`): `{title, done, important}`. The node translates to and
// from whatever version it stores, so this app never learns about todo@3's `status`.
//
// Release lifecycle: when the node's answers carry `Deprecation`/`Sunset`, a notice says
// when this version stops working; when the node answers `unsupported-release` (400
// problem+json, `urn:mutatis:problem:unsupported-release`), the app locks itself: read-only,
// a message asking for an update, sync stopped, and the todos on this device kept.
//
// Settings: the server (default: the origin that served this page, so it works when
// `mutatis serve --static` serves it; `?server=https://node.example` for another origin,
// which then needs `--cors-origin`) and a token with the writer role (`?token=` or the
// settings form), sent as `Authorization: Bearer`. No build step, no CDN: PouchDB is
// vendored in vendor/.
'use strict';

(function () {
  const RELEASE = '4';
  const TYPE = 'todo';
  const DB_NAME = 'web-todo';
  const UNSUPPORTED = 'urn:mutatis:problem:unsupported-release';
  const KEY = {
    server: 'web-todo.server',
    token: 'web-todo.token',
    locked: 'web-todo.locked',
  };

  const OFFLINE = 'offline: your changes are kept here and sent when back online';

  const $ = (id) => document.getElementById(id);

  // ?server= and ?token= are kept for the next visit; the token is then taken out of the
  // address bar, so it does not stay in the history or get shared with a link.
  const params = new URLSearchParams(location.search);
  if (params.has('server')) localStorage.setItem(KEY.server, params.get('server'));
  if (params.has('token')) {
    localStorage.setItem(KEY.token, params.get('token'));
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  }

  function serverBase() {
    const s = (localStorage.getItem(KEY.server) || '').trim();
    return s ? s.replace(/\/+$/, '') : location.origin;
  }
  function token() {
    return (localStorage.getItem(KEY.token) || '').trim();
  }
  function remoteUrl() {
    return serverBase() + '/couch/' + RELEASE;
  }

  // Every request to the node: the token as a bearer token, and no cookies (a token is the
  // credential, so a node allowing any origin with `*` can still be used).
  function withToken(opts) {
    const o = Object.assign({}, opts || {});
    const headers = new Headers(o.headers || {});
    const t = token();
    if (t) headers.set('Authorization', 'Bearer ' + t);
    o.headers = headers;
    o.credentials = 'omit';
    return o;
  }

  const local = new PouchDB(DB_NAME);
  let sync = null;
  let locked = localStorage.getItem(KEY.locked) === '1';

  // ---------------------------------------------------------------------------------------
  // Status line, deprecation notice, lock.

  function setStatus(state, text) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
  }

  // `source`: the response headers of the CouchDB endpoint, or /meta's release list.
  function showDeprecation(sunset, source) {
    const el = $('deprecation');
    el.dataset.source = source;
    let when = 'soon';
    if (sunset) {
      const d = new Date(sunset);
      if (!Number.isNaN(d.getTime())) when = 'on ' + d.toISOString().slice(0, 10);
    }
    el.textContent =
      'This app version (release ' + RELEASE + ') is deprecated: the server stops ' +
      'supporting it ' + when + '. Please update.';
    el.dataset.sunset = sunset || '';
    el.hidden = false;
  }

  function lock(detail) {
    locked = true;
    localStorage.setItem(KEY.locked, '1');
    stopSync();
    document.body.classList.add('locked');
    $('locked').hidden = false;
    $('locked-detail').textContent = detail ? '(' + detail + ')' : '';
    $('deprecation').hidden = true;
    setStatus('locked', 'read-only: this version is no longer supported');
    render();
  }

  function unlock() {
    if (!locked) return;
    locked = false;
    localStorage.removeItem(KEY.locked);
    document.body.classList.remove('locked');
    $('locked').hidden = true;
    render();
  }

  // Whether `resp` is the node refusing this release; its detail if so.
  async function unsupportedDetail(resp) {
    if (resp.status !== 400 && resp.status !== 410) return null;
    let body = null;
    try {
      body = await resp.clone().json();
    } catch (_) {
      return null;
    }
    if (!body) return null;
    if (body.type === UNSUPPORTED || body.error === 'unsupported_release') {
      let d = body.detail || body.reason || 'release ' + RELEASE + ' is not served';
      if (body.oldestSupported && !d.includes('release ' + body.oldestSupported)) {
        d += '; the oldest supported release is ' + body.oldestSupported;
      }
      return d;
    }
    return null;
  }

  // Ask the node how it serves release 4: the CouchDB endpoint's headers (Deprecation,
  // Sunset) or its refusal, else `/meta`'s release list (public, so it answers without a
  // token too). Returns false when the node cannot be reached.
  async function checkRelease() {
    let sawAnswer = false;
    try {
      const resp = await fetch(remoteUrl(), withToken({
        headers: { Accept: 'application/json', 'Mutatis-Release': RELEASE },
        cache: 'no-store',
      }));
      sawAnswer = true;
      const refused = await unsupportedDetail(resp);
      if (refused) {
        lock(refused);
        return true;
      }
      if (resp.headers.get('Deprecation')) {
        showDeprecation(resp.headers.get('Sunset'), 'headers');
        unlock();
        return true;
      }
      if (resp.ok) {
        $('deprecation').hidden = true;
        unlock();
        return true;
      }
    } catch (_) {
      // Offline or unreachable: /meta below says the same, or nothing.
    }
    try {
      const resp = await fetch(serverBase() + '/meta', {
        headers: { Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
      });
      if (!resp.ok) return sawAnswer;
      const meta = await resp.json();
      const release = (meta.releases || []).find((r) => r.name === RELEASE);
      if (!release || release.status === 'unsupported') {
        lock(release ? 'release ' + RELEASE + ' is unsupported' : 'release ' + RELEASE + ' is unknown');
      } else if (release.status === 'deprecated') {
        showDeprecation(release.sunset ? release.sunset + 'T00:00:00Z' : null, 'meta');
        unlock();
      } else {
        $('deprecation').hidden = true;
        unlock();
      }
      return true;
    } catch (_) {
      return sawAnswer;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Sync.

  function stopSync() {
    if (sync) {
      sync.cancel();
      sync = null;
    }
  }

  function onSyncError(err) {
    if (!err) return;
    const name = err.name || err.error || '';
    if ((err.status === 400 || err.status === 410) && name === 'unsupported_release') {
      lock(err.message || err.reason);
      return;
    }
    if (err.status === 401 || err.status === 403) {
      setStatus('error', 'the server refused the token (' + err.status + '): check the settings');
      return;
    }
    if (!navigator.onLine) {
      setStatus('offline', OFFLINE);
      return;
    }
    setStatus('error', 'cannot reach the server (' + (err.status || err.message || err) + '); retrying');
    // The release may have been retired since the last look.
    checkRelease();
  }

  // What went wrong with the last request to the node, or null when it answered. PouchDB's
  // `paused` event does not always carry the error of a retried replication (a request
  // refused by CORS, say), so "up to date" is only said when the last request got through.
  let lastFailure = null;

  function reportFailure(what) {
    lastFailure = what;
    if (locked) return;
    if (!navigator.onLine) setStatus('offline', OFFLINE);
    else setStatus('error', 'cannot reach the server (' + what + '); retrying');
  }

  // Every request of the sync: with the token, watched for failures and for the node
  // refusing this release (which locks the app, whatever PouchDB makes of the answer).
  async function remoteFetch(url, opts) {
    let resp;
    try {
      resp = await PouchDB.fetch(url, withToken(opts));
    } catch (e) {
      // A sync being cancelled (reconnecting, locking) aborts its requests: not a failure.
      if (!(e && e.name === 'AbortError')) reportFailure((e && e.message) || String(e));
      throw e;
    }
    // 404 is a normal answer (PouchDB asks for checkpoints that may not exist yet).
    if (resp.status >= 500 || resp.status === 401 || resp.status === 403) {
      lastFailure = 'HTTP ' + resp.status;
    } else if (resp.status === 400 || resp.status === 410) {
      lastFailure = 'HTTP ' + resp.status;
      const refused = await unsupportedDetail(resp);
      // After PouchDB has the answer: locking cancels the sync that is reading it.
      if (refused) setTimeout(() => lock(refused), 0);
    } else {
      lastFailure = null;
    }
    return resp;
  }

  function startSync() {
    stopSync();
    if (locked) return;
    if (!token()) {
      setStatus('error', 'no token: open Settings and give a token with the writer role');
      return;
    }
    const remote = new PouchDB(remoteUrl(), {
      fetch: remoteFetch,
      // The database is the release: it exists, and the app may not create it.
      skip_setup: true,
    });
    setStatus('syncing', 'syncing…');
    sync = PouchDB.sync(local, remote, {
      live: true,
      retry: true,
      // Quicker than PouchDB's default, and capped: a phone back in signal should not wait
      // minutes; coming back online also restarts the sync at once (below).
      back_off_function: (delay) => (delay ? Math.min(delay * 2, 10000) : 500),
    })
      .on('change', () => render())
      // A local edit wakes the push even offline: say what the user needs to know.
      .on('active', () => {
        if (navigator.onLine) setStatus('syncing', 'syncing…');
        else setStatus('offline', OFFLINE);
      })
      .on('paused', (err) => {
        if (err) onSyncError(err);
        else if (lastFailure) reportFailure(lastFailure);
        else if (navigator.onLine) setStatus('synced', 'up to date with ' + serverBase());
        else setStatus('offline', OFFLINE);
      })
      .on('denied', (err) => onSyncError(err))
      .on('error', (err) => onSyncError(err));
  }

  async function connect() {
    if (!navigator.onLine) {
      setStatus('offline', OFFLINE);
      if (locked) lock();
      return;
    }
    await checkRelease();
    if (!locked) startSync();
  }

  window.addEventListener('online', () => connect());
  window.addEventListener('offline', () => {
    setStatus('offline', OFFLINE);
  });

  // ---------------------------------------------------------------------------------------
  // The list.

  // Ids that sort by creation time, so the list keeps the order todos were added in.
  function newId() {
    const time = Date.now().toString(16).padStart(12, '0');
    const rand = new Uint8Array(6);
    crypto.getRandomValues(rand);
    return time + Array.from(rand, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function render() {
    const result = await local.allDocs({
      include_docs: true,
      startkey: TYPE + ':',
      endkey: TYPE + ':\ufff0',
    });
    const list = $('todos');
    list.replaceChildren();
    for (const row of result.rows) {
      const doc = row.doc;
      const li = document.createElement('li');
      li.dataset.id = doc._id;
      li.classList.toggle('done', !!doc.done);
      li.classList.toggle('important', !!doc.important);

      const done = document.createElement('input');
      done.type = 'checkbox';
      done.checked = !!doc.done;
      done.disabled = locked;
      done.title = 'done';
      done.addEventListener('change', () => update(doc._id, { done: done.checked }));

      const title = document.createElement('span');
      title.className = 'title';
      title.textContent = doc.title;

      const star = document.createElement('button');
      star.type = 'button';
      star.className = 'star';
      star.textContent = doc.important ? '★' : '☆';
      star.title = 'important';
      star.disabled = locked;
      star.addEventListener('click', () => update(doc._id, { important: !doc.important }));

      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'delete';
      del.textContent = '✕';
      del.title = 'delete';
      del.disabled = locked;
      del.addEventListener('click', () => remove(doc._id));

      li.append(done, title, star, del);
      list.append(li);
    }
    $('empty').hidden = result.rows.length > 0;
    for (const el of $('add-form').elements) el.disabled = locked;
  }

  async function add(title, important) {
    if (locked) return;
    await local.put({ _id: TYPE + ':' + newId(), title, done: false, important });
  }

  async function update(id, changes) {
    if (locked) return;
    const doc = await local.get(id);
    await local.put(Object.assign(doc, changes));
  }

  async function remove(id) {
    if (locked) return;
    const doc = await local.get(id);
    await local.remove(doc);
  }

  local.changes({ since: 'now', live: true }).on('change', () => render());

  $('add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const title = $('new-title').value.trim();
    if (!title) return;
    await add(title, $('new-important').checked);
    $('new-title').value = '';
    $('new-important').checked = false;
  });

  $('server').value = localStorage.getItem(KEY.server) || '';
  $('token').value = token();
  $('settings-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const server = $('server').value.trim();
    if (server) localStorage.setItem(KEY.server, server);
    else localStorage.removeItem(KEY.server);
    localStorage.setItem(KEY.token, $('token').value.trim());
    connect();
  });

  // For tests and the curious: the local database and a way to wait for start-up.
  window.webTodo = {
    local,
    ready: (async () => {
      if (locked) lock();
      await render();
      await connect();
    })(),
  };
})();
