// Building the DOM without ever parsing data as markup: every string becomes a text node, and
// attributes are set one by one (never an event handler or a style attribute, which the page's
// Content-Security-Policy would refuse anyway).

const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') || k === 'style') {
      throw new Error(`attribute ${k} is not set from data`);
    }
    if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// An HTML element: h('td', {class: 'num'}, '42').
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// An SVG element: s('circle', {cx: 4, cy: 4, r: 2}).
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// Replace what `el` holds.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Text with `code` spans (as the changelog words it): the parts between backticks become
// <code> elements, the rest text nodes.
export function codeText(text) {
  const parts = String(text).split('`');
  return parts.map((p, i) => (i % 2 === 1 ? h('code', null, p) : p)).filter((p) => p !== '');
}

export function badge(text, kind) {
  return h('span', { class: `badge badge-${kind || 'neutral'}` }, text);
}

export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

export function card(title, ...children) {
  return h('div', { class: 'card' }, title ? h('h2', null, title) : null, ...children);
}

// A number with thousands separators.
export function num(n) {
  if (n === null || n === undefined) return '–';
  return Number(n).toLocaleString('en-US');
}

export function percent(share) {
  if (share === null || share === undefined) return '–';
  const p = share * 100;
  return `${p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)}%`;
}

export function clock(date) {
  return date.toLocaleTimeString('en-GB', { hour12: false });
}
