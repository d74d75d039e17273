// Calls to the node's own API with the operator's token. A failure is an ApiError carrying
// the RFC 9457 problem the server answered (or one made up for a network failure).

const TOKEN_KEY = 'mutatis.dashboard.token';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
  // The token is missing, wrong or not an admin's.
  get unauthorised() {
    return this.status === 401 || this.status === 403;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// `path` on this node, as JSON (or text when `as` is 'text'), with `tok` (default: the
// stored token) in Authorization.
export async function api(path, { method = 'GET', body, as = 'json', tok } = {}) {
  const headers = { Accept: as === 'json' ? 'application/json' : 'text/plain, */*' };
  const t = tok ?? token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, { title: 'Network error', detail: `the node did not answer (${e.message})` });
  }
  if (!resp.ok) {
    let problem;
    try {
      problem = await resp.json();
    } catch {
      problem = { title: resp.statusText, detail: `HTTP ${resp.status}` };
    }
    throw new ApiError(resp.status, problem);
  }
  if (resp.status === 204) return null;
  return as === 'json' ? resp.json() : resp.text();
}
