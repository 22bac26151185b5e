/** URLs of Mission Control behind jupyter-server-proxy, under the Jupyter server's base URL. */

/** The proxied path (the entry point's name in forge_nb/jupyter/proxy.py). */
export const PROXY_PATH = 'forge-nb/';

function base(baseUrl: string): string {
  return baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
}

/** `<base>forge-nb/?tab=dead&theme=dark` (no `theme` in a light Lab). */
export function dashboardUrl(baseUrl: string, tab: string, dark: boolean): string {
  const query = new URLSearchParams({ tab });
  if (dark) {
    query.set('theme', 'dark');
  }
  return `${base(baseUrl)}${PROXY_PATH}?${query.toString()}`;
}

/** The same page in the other theme: `theme=dark` added or removed, the rest kept. */
export function withTheme(url: string, dark: boolean): string {
  const [path, search = ''] = url.split('?', 2);
  const query = new URLSearchParams(search);
  if (dark) {
    query.set('theme', 'dark');
  } else {
    query.delete('theme');
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** `<base>forge-nb/api/<path>`; queue names are path segments, so they are escaped. */
export function apiUrl(baseUrl: string, ...segments: string[]): string {
  return `${base(baseUrl)}${PROXY_PATH}api/${segments.map(encodeURIComponent).join('/')}`;
}
