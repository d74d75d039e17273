// Inline SVG charts, drawn from data with createElementNS (no library): a type's version
// graph and the usage of releases over time. Colours come from CSS classes, so light and dark
// themes apply.

import { h, s, num } from './dom.js';

// The version graph of one type: a node per version (the storage version ringed, the
// releases that speak it listed below), an arrow per lens from the version it starts from.
// `versions`: the manifest's `types[T].versions` ({"1": {...}, "2": {"lens": [...]}}).
export function versionGraph(typeName, versions, storageVersion, releasesByVersion) {
  const nums = Object.keys(versions).map(Number).sort((a, b) => a - b);
  // Each version's parent: its `from`, else the version before it (the graph is a chain
  // unless a version says where it branches from).
  const parent = new Map();
  nums.forEach((v, i) => {
    const def = versions[String(v)];
    if (def.from !== undefined) parent.set(v, def.from);
    else if (i > 0) parent.set(v, nums[i - 1]);
  });
  // Layout: a column per depth; a version whose parent already has a child in the same
  // row opens a row of its own (a branch).
  const pos = new Map();
  const childrenPlaced = new Map();
  let rows = 1;
  for (const v of nums) {
    const p = parent.get(v);
    if (p === undefined || !pos.has(p)) {
      pos.set(v, { col: 0, row: pos.size === 0 ? 0 : rows++ });
      continue;
    }
    const pp = pos.get(p);
    const taken = childrenPlaced.get(p) || 0;
    childrenPlaced.set(p, taken + 1);
    pos.set(v, { col: pp.col + 1, row: taken === 0 ? pp.row : rows++ });
  }
  const cols = Math.max(...[...pos.values()].map((p) => p.col)) + 1;
  const colW = 150;
  const rowH = 110;
  const pad = 46;
  const width = pad * 2 + (cols - 1) * colW + 20;
  const height = 20 + rows * rowH;
  const xy = (v) => {
    const p = pos.get(v);
    return [pad + p.col * colW, 44 + p.row * rowH];
  };
  const svg = s('svg', {
    class: 'graph',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': `${typeName}: versions ${nums.join(', ')}, stored at ${storageVersion}`,
  });
  svg.append(
    s('defs', null,
      s('marker', { id: `arrow-${typeName}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'graph-arrow' }))),
  );
  const r = 20;
  for (const v of nums) {
    const p = parent.get(v);
    if (p === undefined || !pos.has(p)) continue;
    const [x1, y1] = xy(p);
    const [x2, y2] = xy(v);
    const lens = versions[String(v)].lens;
    const ops = Array.isArray(lens) ? lens.length : 0;
    const names = Array.isArray(lens) ? lens.map(opName) : [];
    const angle = Math.atan2(y2 - y1, x2 - x1);
    const sx = x1 + r * Math.cos(angle);
    const sy = y1 + r * Math.sin(angle);
    const ex = x2 - (r + 2) * Math.cos(angle);
    const ey = y2 - (r + 2) * Math.sin(angle);
    svg.append(
      s('line', { x1: sx, y1: sy, x2: ex, y2: ey, class: 'graph-edge', 'marker-end': `url(#arrow-${typeName})` },
        s('title', null, `${typeName}@${p} → @${v}: ${names.join(', ') || 'no ops'}`)),
      s('text', { x: (sx + ex) / 2, y: (sy + ey) / 2 - 8, class: 'graph-edge-label', 'text-anchor': 'middle' },
        `${ops} op${ops === 1 ? '' : 's'}`),
    );
  }
  for (const v of nums) {
    const [x, y] = xy(v);
    const stored = v === storageVersion;
    const g = s('g', { class: `graph-node${stored ? ' stored' : ''}`, 'data-version': v });
    g.append(
      s('circle', { cx: x, cy: y, r }),
      s('text', { x, y: y + 5, 'text-anchor': 'middle', class: 'graph-node-label' }, `v${v}`),
    );
    const rels = releasesByVersion.get(v) || [];
    if (rels.length) {
      g.append(s('text', { x, y: y + r + 16, 'text-anchor': 'middle', class: 'graph-releases' },
        `release${rels.length > 1 ? 's' : ''} ${rels.join(', ')}`));
    }
    if (stored) {
      g.append(s('text', { x, y: y - r - 8, 'text-anchor': 'middle', class: 'graph-stored' }, 'storage'));
    }
    const desc = versions[String(v)].description;
    g.append(s('title', null, `${typeName}@${v}${desc ? `: ${desc}` : ''}`));
    svg.append(g);
  }
  return svg;
}

// The op's name, whichever spelling the lens file used ({rename: …} or {op: rename, …}).
function opName(op) {
  if (op && typeof op === 'object') {
    if (typeof op.op === 'string') return op.op;
    const keys = Object.keys(op);
    if (keys.length) return keys[0];
  }
  return '?';
}

const SERIES_CLASSES = 6;

// Requests per day over the last `days` days, stacked by release, as bars.
// `series`: [{name, perDay: Map('YYYY-MM-DD' → n)}]; `today`: 'YYYY-MM-DD'.
export function usageChart(series, today, days = 30) {
  const dates = [];
  const end = Date.parse(`${today}T00:00:00Z`);
  for (let i = days - 1; i >= 0; i--) {
    dates.push(new Date(end - i * 86400000).toISOString().slice(0, 10));
  }
  const totals = dates.map((d) => series.reduce((sum, r) => sum + (r.perDay.get(d) || 0), 0));
  const max = Math.max(1, ...totals);
  // About the width the card gives it on a laptop screen, so the text is drawn near its size.
  const width = 1180;
  const height = 190;
  const left = 52;
  const right = 12;
  const top = 14;
  const bottom = 30;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const slot = plotW / dates.length;
  const barW = Math.max(2, slot * 0.72);
  const svg = s('svg', {
    class: 'chart',
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `requests per day over the last ${days} days, by release`,
  });
  // Gridlines at round numbers.
  const step = niceStep(max);
  for (let v = 0; v <= max; v += step) {
    const y = top + plotH - (v / max) * plotH;
    svg.append(
      s('line', { x1: left, x2: width - right, y1: y, y2: y, class: 'chart-grid' }),
      s('text', { x: left - 8, y: y + 4, 'text-anchor': 'end', class: 'chart-axis' }, num(v)),
    );
  }
  dates.forEach((d, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let y = top + plotH;
    series.forEach((r, si) => {
      const n = r.perDay.get(d) || 0;
      if (!n) return;
      const bh = (n / max) * plotH;
      y -= bh;
      svg.append(s('rect', { x, y, width: barW, height: bh, rx: 2, class: `series-${si % SERIES_CLASSES}` },
        s('title', null, `${d} · release ${r.name}: ${num(n)} request${n === 1 ? '' : 's'}`)));
    });
    if (i % 5 === days % 5 || i === dates.length - 1) {
      svg.append(s('text', { x: x + barW / 2, y: height - 10, 'text-anchor': 'middle', class: 'chart-axis' }, d.slice(5)));
    }
  });
  const legend = h('ul', { class: 'legend' },
    series.map((r, si) => h('li', null, h('span', { class: `swatch series-${si % SERIES_CLASSES}` }), `release ${r.name}`)));
  return h('figure', { class: 'chart-figure' }, svg, legend);
}

function niceStep(max) {
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
  return Math.max(1, step * mag);
}

// A horizontal share bar (0..1).
export function shareBar(share) {
  const bar = h('span', { class: 'share-bar' });
  const fillEl = h('span', { class: 'share-fill' });
  fillEl.style.width = `${Math.max(0, Math.min(1, share || 0)) * 100}%`;
  bar.append(fillEl);
  return bar;
}
