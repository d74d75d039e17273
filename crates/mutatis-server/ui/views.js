// The dashboard's sections, each a function that reads the API and fills its panel.

import { api } from './api.js';
import { h, fill, badge, empty, card, num, percent, clock, codeText } from './dom.js';
import { versionGraph, usageChart, shareBar } from './charts.js';

const STATUS_KIND = { current: 'good', supported: 'info', deprecated: 'warn', unsupported: 'bad' };
const VERDICT_KIND = { keep: 'good', wait: 'warn', retire: 'bad', retired: 'neutral' };

function statusBadge(status) {
  return badge(status, STATUS_KIND[status] || 'neutral');
}

function sectionHead(title, subtitle, ...extra) {
  return h('div', { class: 'section-head' },
    h('div', null, h('h1', null, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null),
    h('div', { class: 'section-actions' }, ...extra));
}

// Types and their version graphs, from /schema (the manifest) and /meta (storage in use).
export async function overview(panel) {
  const [meta, manifest] = await Promise.all([api('/meta'), api('/schema')]);
  const releasesByType = new Map();
  for (const r of meta.releases) {
    for (const [t, v] of Object.entries(r.types || {})) {
      if (!releasesByType.has(t)) releasesByType.set(t, new Map());
      const m = releasesByType.get(t);
      if (!m.has(v)) m.set(v, []);
      m.get(v).push(r.name);
    }
  }
  const types = Object.entries(manifest.types || {});
  fill(panel,
    sectionHead('Types', `${manifest.name}${manifest.description ? ` — ${manifest.description}` : ''}`),
    h('div', { class: 'stats' },
      stat('Types', types.length),
      stat('Releases', meta.releases.length),
      stat('Current release', meta.currentRelease),
      stat('Node', String(meta.nodeId).slice(0, 12)),
      stat('mutatis', meta.mutatis)),
    types.length === 0 ? empty('This schema set has no types.') : null,
    types.map(([name, t]) => {
      const st = (meta.types[name] || {}).storage || {};
      const versions = Object.keys(t.versions || {});
      return card(null,
        h('div', { class: 'card-head' },
          h('h2', null, name),
          h('span', { class: 'muted' }, `${versions.length} version${versions.length === 1 ? '' : 's'} · stored at v${st.version} (${st.strategy})`)),
        t.description ? h('p', { class: 'muted' }, t.description) : null,
        h('div', { class: 'graph-wrap', dataset: { type: name } },
          versionGraph(name, t.versions || {}, st.version, releasesByType.get(name) || new Map())));
    }));
}

// A share of requests with its bar, and the count below it.
function usageCell(share, requests, span) {
  return h('td', { class: 'num usage' },
    h('div', { class: 'share' }, shareBar(share), h('span', { class: 'strong', dataset: { field: `share${span}` } }, percent(share))),
    h('div', { class: 'muted small' }, h('span', { dataset: { field: `requests${span}` } }, num(requests)), requests === 1 ? ' request' : ' requests'));
}

function stat(label, value) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-value' }, String(value ?? '–')), h('div', { class: 'stat-label' }, label));
}

// Releases: lifecycle, usage and the retirement verdict, and usage per day as a chart.
export async function releases(panel) {
  const report = await api('/admin/releases?history=true');
  const rows = report.releases || [];
  const series = rows.map((r) => {
    const perDay = new Map();
    for (const [day, c] of Object.entries((r.history && r.history.days) || {})) {
      perDay.set(day, Object.values(c.requests || {}).reduce((a, b) => a + b, 0));
    }
    return { name: r.release, perDay };
  });
  const table = h('table', { class: 'table', id: 'releases-table' },
    h('thead', null, h('tr', null,
      ['Release', 'Status', 'Deprecated', 'Sunset', 'Last 7 days', 'Last 30 days', 'Tokens', 'Last seen', 'Verdict']
        .map((c) => h('th', null, c)))),
    h('tbody', null, rows.map((r) => h('tr', { dataset: { release: r.release } },
      h('td', { class: 'strong' }, r.release),
      h('td', null, statusBadge(r.status)),
      h('td', { class: 'nowrap' }, r.deprecated || '–'),
      h('td', { class: 'nowrap' }, r.sunset || '–'),
      usageCell(r.share7d, r.requests7d, '7d'),
      usageCell(r.share30d, r.requests30d, '30d'),
      h('td', { class: 'num', dataset: { field: 'tokens30d' }, title: `${num(r.anonymous30d)} request(s) without a token in 30 days` }, num(r.tokens30d)),
      h('td', { class: 'nowrap', dataset: { field: 'lastSeen' } }, r.lastSeen || 'never'),
      h('td', { dataset: { field: 'verdict' } },
        badge(r.verdict, VERDICT_KIND[r.verdict] || 'neutral'),
        h('div', { class: 'reason' }, r.reason))))));
  fill(panel,
    sectionHead('Releases', `As of ${report.today}${report.recording ? '' : ' · usage recording is off on this node'}`,
      h('button', { type: 'button', class: 'ghost', id: 'releases-refresh' }, 'Refresh')),
    card('Requests per day, by release', usageChart(series, report.today, 30)),
    card('Lifecycle and retirement', rows.length ? h('div', { class: 'table-wrap' }, table) : empty('No releases.')));
  panel.querySelector('#releases-refresh').addEventListener('click', () => releases(panel).catch(() => {}));
}

// Migrations, polled every second while signed in (whichever section is shown, so a switch is
// seen when it happens): a progress bar per type, its phase, and the moment the page saw it
// switch.
const switchedSeen = new Map();
// Per type, what the previous poll saw: the migration in flight and the backup's switch.
const lastSeen = new Map();

export async function migrations(panel) {
  const report = await api('/admin/migrations');
  const now = new Date();
  for (const t of report.types) {
    const switchSeq = t.backup ? t.backup.switchedAt : null;
    const was = lastSeen.get(t.type);
    // A switch is a migration gone, or a new backup (a migration that ran between two polls
    // from start to switch).
    if (was && !t.migration && (was.migration || (switchSeq !== null && switchSeq !== was.switchSeq))) {
      switchedSeen.set(t.type, { at: now, to: t.storageVersion });
    }
    lastSeen.set(t.type, { migration: t.migration, switchSeq });
  }
  let list = panel.querySelector('#migrations-list');
  if (!list) {
    fill(panel,
      sectionHead('Migrations', 'Live: read every second from /admin/migrations'),
      (list = h('div', { id: 'migrations-list', class: 'grid' })));
  }
  fill(list, report.types.map((t) => migrationCard(t)));
  return report;
}

function migrationCard(t) {
  const m = t.migration;
  const seen = switchedSeen.get(t.type);
  let state;
  let done = 0;
  let total = 0;
  if (m) {
    state = 'running';
    done = m.done;
    total = m.total;
  } else if (seen) {
    state = 'switched';
  } else {
    state = 'idle';
  }
  const fraction = m ? (total > 0 ? Math.min(1, done / total) : 0) : seen ? 1 : 0;
  const bar = h('div', {
    class: `progress progress-${state}`,
    role: 'progressbar',
    'aria-valuemin': 0,
    'aria-valuemax': 100,
    'aria-valuenow': Math.round(fraction * 100),
    dataset: { done, total, state },
  });
  const fillEl = h('div', { class: 'progress-fill' });
  fillEl.style.width = `${fraction * 100}%`;
  bar.append(fillEl);
  const lines = [];
  if (m) {
    lines.push(h('p', { class: 'migration-line' },
      badge(m.kind === 'rollback' ? 'rolling back' : 'migrating', 'warn'), ' ',
      `v${m.from} → v${m.to} · ${m.phase} · `,
      h('span', { class: 'strong', dataset: { field: 'progress' } }, `${num(done)} / ${num(total)}`),
      ` (${(fraction * 100).toFixed(1)}%)`,
      m.quarantined ? ` · ${num(m.quarantined)} quarantined` : null,
      t.running ? null : ' · paused (not running in this process)'));
  } else if (seen) {
    lines.push(h('p', { class: 'migration-line', dataset: { field: 'switched' } },
      badge('switched', 'good'), ' ',
      `to v${seen.to} at ${clock(seen.at)}`,
      t.backup ? ` · backup of v${t.backup.version} kept (switched at feed sequence ${t.backup.switchedAt})` : null));
  } else {
    lines.push(h('p', { class: 'migration-line muted' }, 'No migration in flight.',
      t.backup ? ` Backup of v${t.backup.version} kept (switched at feed sequence ${t.backup.switchedAt}).` : null));
  }
  if (t.lastError) lines.push(h('p', { class: 'error-text' }, t.lastError));
  // The storage mutatis.yaml declares differs from what the store holds (a migration by hand
  // is one way): worth knowing, not a failure.
  if (t.declared && t.declared.problem) lines.push(h('p', { class: 'warn-text small' }, codeText(t.declared.problem)));
  const actions = (t.declared && t.declared.actions) || [];
  return card(null,
    h('div', { class: 'card-head' }, h('h2', null, t.type),
      h('span', { class: 'muted' }, `stored at v${t.storageVersion} (${t.strategy}) · declared v${t.declared ? t.declared.version : '?'}`)),
    h('div', { class: 'migration', dataset: { type: t.type, state } }, bar, lines),
    actions.length ? h('div', { class: 'muted small declared' }, 'What reaching the declared storage takes: ',
      h('ul', { class: 'plain' }, actions.map((a) => h('li', null, a.description || a.action)))) : null,
    t.quarantined ? h('p', { class: 'warn-text' }, `${num(t.quarantined)} document(s) quarantined`) : null);
}

// Replication jobs (lag: the source's head minus the sequence reached) and webhooks.
export async function sync(panel) {
  const [jobs, hooks] = await Promise.all([api('/admin/replications'), api('/admin/webhooks')]);
  const jobRows = jobs.replications || [];
  const hookRows = hooks.webhooks || [];
  fill(panel,
    sectionHead('Replication & webhooks', 'Background tasks configured on this node',
      h('button', { type: 'button', class: 'ghost', id: 'sync-refresh' }, 'Refresh')),
    card('Replication jobs', jobRows.length === 0 ? empty('No replication job is configured (POST /admin/replications).') :
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'jobs-table' },
        h('thead', null, h('tr', null, ['Job', 'From → to', 'Types', 'State', 'Reached', 'Lag', 'Tally', 'Error'].map((c) => h('th', null, c)))),
        h('tbody', null, jobRows.map((j) => {
          const p = j.progress || {};
          const lag = p.head !== undefined && p.seq !== undefined ? Math.max(0, p.head - p.seq) : null;
          return h('tr', { dataset: { job: j.id } },
            h('td', { class: 'mono' }, j.id),
            h('td', null, `${j.source ?? '?'} → ${j.target ?? '?'}`, j.continuous ? h('div', { class: 'muted small' }, 'continuous') : null),
            h('td', null, (j.types || []).join(', ') || 'all'),
            h('td', null, badge(j.state, j.error ? 'bad' : j.state === 'finished' ? 'good' : 'info')),
            h('td', { class: 'num' }, p.seq === undefined ? '–' : num(p.seq)),
            h('td', { class: 'num' }, lag === null ? '–' : num(lag)),
            h('td', { class: 'small' }, tally(p.tally)),
            h('td', { class: 'error-text small' }, j.error || ''));
        }))))),
    card('Webhooks', hookRows.length === 0 ? empty('No webhook is configured (POST /admin/webhooks).') :
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'webhooks-table' },
        h('thead', null, h('tr', null, ['Webhook', 'URL', 'Release', 'Types', 'State', 'Delivered up to', 'Failures', 'Last delivery', 'Last error'].map((c) => h('th', null, c)))),
        h('tbody', null, hookRows.map((w) => h('tr', { dataset: { webhook: w.id } },
          h('td', { class: 'mono' }, w.id),
          h('td', { class: 'mono small' }, w.url ?? ''),
          h('td', null, w.release ?? ''),
          h('td', null, (w.types || []).join(', ') || 'all'),
          h('td', null, badge(w.state, w.consecutiveFailures ? 'bad' : 'good')),
          h('td', { class: 'num' }, num(w.seq)),
          h('td', { class: 'num', dataset: { field: 'failures' } }, `${num(w.failures)}${w.consecutiveFailures ? ` (${num(w.consecutiveFailures)} in a row)` : ''}`),
          h('td', { class: 'small' }, w.lastDelivery || '–'),
          h('td', { class: 'error-text small', dataset: { field: 'lastError' } }, w.lastError || ''))))))));
  panel.querySelector('#sync-refresh').addEventListener('click', () => sync(panel).catch(() => {}));
}

function tally(t) {
  if (!t || typeof t !== 'object') return '–';
  const parts = Object.entries(t).filter(([, v]) => typeof v === 'number' && v !== 0).map(([k, v]) => `${k} ${num(v)}`);
  return parts.join(' · ') || '–';
}

// The changelog, newest release first, per type, breaking changes marked.
export async function changelog(panel) {
  const log = await api('/changelog');
  const rels = [...(log.releases || [])].reverse();
  fill(panel,
    sectionHead('Changelog', `What changed from one release of ${log.schemaSet} to the next, from the lenses and schemas`),
    rels.map((r) => card(null,
      h('div', { class: 'card-head', dataset: { release: r.release } },
        h('h2', null, `Release ${r.release}`), statusBadge(r.status),
        h('span', { class: 'muted' }, r.previous ? `from release ${r.previous}` : 'first release')),
      r.types.length === 0 ? empty('No type changed.') :
        r.types.map((t) => h('div', { class: `change${t.breaking ? ' breaking' : ''}`, dataset: { type: t.type, breaking: t.breaking } },
          h('div', { class: 'change-head' },
            h('span', { class: 'strong' }, t.type), ' ',
            h('span', { class: 'muted' }, t.from === null || t.from === undefined ? `new at v${t.to}` : `v${t.from} → v${t.to}`), ' ',
            t.breaking ? badge('breaking', 'bad') : t.from === null || t.from === undefined ? badge('new', 'info') : badge('compatible', 'good')),
          h('ul', { class: 'change-list' }, (t.changes || []).map((c) => h('li', null, codeText(c)))),
          t.verdict ? h('p', { class: 'muted small' }, codeText(t.verdict)) : null,
          lossList(t.losses))))));
}

function lossList(losses) {
  if (!losses) return null;
  const items = [];
  const walk = (v, label) => {
    if (Array.isArray(v)) v.forEach((x) => walk(x, label));
    else if (typeof v === 'string') items.push(label ? `${label}: ${v}` : v);
    else if (v && typeof v === 'object') Object.entries(v).forEach(([k, x]) => walk(x, label ? `${label} ${k}` : k));
  };
  walk(losses, '');
  if (!items.length) return null;
  return h('details', { class: 'small' }, h('summary', null, `${items.length} possible loss${items.length === 1 ? '' : 'es'}`),
    h('ul', { class: 'change-list' }, items.map((i) => h('li', null, codeText(i)))));
}
