// A compact reader of one release's OpenAPI 3.1 document (/openapi.json?release=R): its
// operations grouped by path, with parameters, request body, responses, and the schemas they
// name, each shown as a tree of properties.

import { api } from './api.js';
import { h, fill, badge, empty, card, codeText } from './dom.js';

const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options'];

export async function apiDocs(panel, state) {
  const meta = state.meta || (state.meta = await api('/meta'));
  const names = meta.releases.map((r) => r.name);
  const chosen = state.apiRelease && names.includes(state.apiRelease) ? state.apiRelease : meta.currentRelease;
  state.apiRelease = chosen;
  const select = h('select', { id: 'api-release', 'aria-label': 'Release' },
    meta.releases.map((r) => h('option', { value: r.name, selected: r.name === chosen }, `Release ${r.name} (${r.status})`)));
  const body = h('div', { id: 'api-doc' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(panel,
    h('div', { class: 'section-head' },
      h('div', null, h('h1', null, 'API'), h('p', { class: 'muted' }, 'Each release\'s contract, from /openapi.json?release=R')),
      h('div', { class: 'section-actions' }, select)),
    body);
  select.addEventListener('change', () => {
    state.apiRelease = select.value;
    renderDoc(body, select.value).catch((e) => fill(body, h('p', { class: 'error-text' }, e.message)));
  });
  await renderDoc(body, chosen);
}

// Which release was asked for last: an earlier answer that arrives later is dropped.
let latest = null;

async function renderDoc(body, release) {
  latest = release;
  const doc = await api(`/openapi.json?release=${encodeURIComponent(release)}`);
  if (latest !== release) return;
  const schemas = (doc.components && doc.components.schemas) || {};
  const paths = Object.entries(doc.paths || {});
  fill(body,
    card(null,
      h('div', { class: 'card-head' }, h('h2', { dataset: { release, version: doc.info ? doc.info.version : '' } }, doc.info ? doc.info.title : `Release ${release}`),
        h('span', { class: 'muted' }, `OpenAPI ${doc.openapi} · version ${doc.info ? doc.info.version : ''}`)),
      doc.info && doc.info.description ? h('p', { class: 'muted pre' }, codeText(doc.info.description)) : null),
    card(`Operations (${paths.reduce((n, [, item]) => n + METHODS.filter((m) => item[m]).length, 0)})`,
      paths.length === 0 ? empty('No paths.') :
        paths.map(([path, item]) => METHODS.filter((m) => item[m]).map((m) => operation(path, m, item[m], item.parameters || [], doc)))),
    card(`Schemas (${Object.keys(schemas).length})`,
      Object.entries(schemas).map(([name, sc]) => h('details', { class: 'schema', id: `schema-${name}` },
        h('summary', null, h('span', { class: 'mono strong' }, name), sc.description ? h('span', { class: 'muted small' }, ' — ', codeText(firstLine(sc.description))) : null),
        schemaTree(sc, doc, 0)))));
}

function operation(path, method, op, shared, doc) {
  const params = [...shared, ...(op.parameters || [])].map((p) => resolve(p, doc));
  const reqBody = op.requestBody ? resolve(op.requestBody, doc) : null;
  return h('details', { class: 'op', dataset: { method, path } },
    h('summary', null,
      h('span', { class: `method method-${method}` }, method.toUpperCase()),
      h('span', { class: 'mono op-path' }, path),
      h('span', { class: 'muted op-summary' }, codeText(op.summary || '')),
      op.deprecated ? badge('deprecated', 'warn') : null),
    op.description ? h('p', { class: 'muted pre small' }, codeText(op.description)) : null,
    params.length ? h('div', null, h('h3', null, 'Parameters'),
      h('table', { class: 'table compact' }, h('tbody', null, params.map((p) => h('tr', null,
        h('td', { class: 'mono' }, p.name, p.required ? h('span', { class: 'req' }, ' *') : null),
        h('td', { class: 'muted' }, p.in),
        h('td', { class: 'mono small' }, typeLabel(p.schema, doc)),
        h('td', { class: 'small' }, codeText(firstLine(p.description || '')))))))) : null,
    reqBody ? h('div', null, h('h3', null, 'Request body'), content(reqBody.content, doc)) : null,
    h('div', null, h('h3', null, 'Responses'),
      h('table', { class: 'table compact' }, h('tbody', null, Object.entries(op.responses || {}).map(([code, r]) => {
        const resp = resolve(r, doc);
        return h('tr', null,
          h('td', { class: `mono code code-${String(code)[0]}` }, code),
          h('td', { class: 'small' }, codeText(firstLine(resp.description || ''))),
          h('td', null, content(resp.content, doc)));
      })))));
}

function content(c, doc) {
  if (!c) return null;
  return h('div', { class: 'content' }, Object.entries(c).map(([type, m]) =>
    h('div', null, h('span', { class: 'mono muted small' }, type), ' ', h('span', { class: 'mono small' }, typeLabel(m.schema, doc)))));
}

function resolve(obj, doc) {
  let o = obj;
  for (let i = 0; i < 8 && o && typeof o.$ref === 'string' && o.$ref.startsWith('#/'); i++) {
    o = o.$ref.slice(2).split('/').reduce((acc, k) => (acc ? acc[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc) || {};
  }
  return o || {};
}

function refName(ref) {
  return ref.split('/').pop();
}

function typeLabel(schema, doc) {
  if (!schema) return '';
  if (schema.$ref) return refName(schema.$ref);
  if (schema.type === 'array') return `${typeLabel(schema.items, doc)}[]`;
  if (schema.enum) return schema.enum.map((e) => JSON.stringify(e)).join(' | ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  for (const k of ['oneOf', 'anyOf']) {
    if (Array.isArray(schema[k])) return schema[k].map((x) => typeLabel(x, doc)).join(' | ');
  }
  if (Array.isArray(schema.type)) return schema.type.join(' | ');
  return schema.type || (schema.properties ? 'object' : 'any');
}

function schemaTree(schema, doc, depth) {
  const sc = schema || {};
  const props = sc.properties ? Object.entries(sc.properties) : [];
  const required = new Set(sc.required || []);
  if (!props.length) return h('p', { class: 'mono small' }, typeLabel(sc, doc));
  return h('ul', { class: 'tree' }, props.map(([name, p]) => {
    const nested = depth < 3 && p && p.properties ? schemaTree(p, doc, depth + 1)
      : depth < 3 && p && p.items && p.items.properties ? schemaTree(p.items, doc, depth + 1) : null;
    return h('li', null,
      h('span', { class: 'mono strong' }, name), required.has(name) ? h('span', { class: 'req' }, ' *') : null, ' ',
      h('span', { class: 'mono muted small' }, typeLabel(p, doc)),
      p && p.description ? h('span', { class: 'small muted' }, ' — ', codeText(firstLine(p.description))) : null,
      nested);
  }));
}

function firstLine(text) {
  return String(text).split('\n')[0];
}
