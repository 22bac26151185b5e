/**
 * The forge-nb sidebar: live per-queue counts with pause/resume, and a button per
 * Mission Control tab. It polls the proxied JSON API (one request at a time, at most one
 * per `POLL_MS`) only while it is shown and the browser tab is visible.
 */
import { ServerConnection } from '@jupyterlab/services';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { Poller } from './poll';
import { TABS } from './tabs';
import { apiUrl } from './urls';

/** Milliseconds between two polls (the spacing is a floor, see `Poller`). */
export const POLL_MS = 2000;
/** Every so many polls, `GET api/queues` (counts and whether each queue is paused)
 * instead of `GET api/counts`. */
export const CONFIG_EVERY = 5;
/** The statuses a queue's counts show, in order (forge_nb's `STATUSES`). */
export const STATUSES = ['waiting', 'pending', 'running', 'failed', 'dead', 'done'];

type Counts = Record<string, Record<string, number>>;

interface IRow {
  node: HTMLDivElement;
  badge: HTMLSpanElement;
  button: HTMLButtonElement;
  counts: HTMLDivElement;
  cells: Map<string, HTMLElement>;
}

interface IQueueJson {
  name: string;
  paused: boolean;
  counts: Record<string, number>;
}

export interface ISidebarOptions {
  /** The Jupyter server's base URL (`PageConfig.getBaseUrl()`). */
  baseUrl: string;
  /** Token and XSRF headers: the proxy sits behind Jupyter's own auth. */
  settings: ServerConnection.ISettings;
  /** Opens a Mission Control tab as a Lab panel. */
  openTab: (slug: string) => void;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export class ForgeSidebar extends Widget {
  constructor(private readonly options: ISidebarOptions) {
    super();
    this.id = 'forge-nb-sidebar';
    this.addClass('fnb-lab-sidebar');
    this.title.caption = 'forge-nb: queues and Mission Control';

    const header = element('div', 'fnb-lab-header');
    header.appendChild(element('span', 'fnb-lab-name', 'forge-nb'));
    this._status = element('span', 'fnb-lab-status', 'connecting…');
    header.appendChild(this._status);
    this.node.appendChild(header);

    this.node.appendChild(element('div', 'fnb-lab-section', 'Queues'));
    this._queues = element('div', 'fnb-lab-queues');
    this._empty = element('div', 'fnb-lab-empty', 'No queues yet.');
    this._empty.hidden = true;
    this._queues.appendChild(this._empty);
    this.node.appendChild(this._queues);

    this.node.appendChild(element('div', 'fnb-lab-section', 'Mission Control'));
    const tabs = element('div', 'fnb-lab-tabs');
    for (const tab of TABS) {
      const button = element('button', 'fnb-lab-tab jp-Button', tab.title);
      button.type = 'button';
      button.dataset.tab = tab.slug;
      button.title = `Open Mission Control's ${tab.title} tab in a panel`;
      button.addEventListener('click', () => this.options.openTab(tab.slug));
      tabs.appendChild(button);
    }
    this.node.appendChild(tabs);

    this.poller = new Poller(() => this._poll(), POLL_MS);
    document.addEventListener('visibilitychange', this._visibilityChanged);
  }

  /** Exposed for tests and the performance check. */
  readonly poller: Poller;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.poller.stop();
    document.removeEventListener('visibilitychange', this._visibilityChanged);
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._syncPolling();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._syncPolling();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._syncPolling();
  }

  protected onBeforeDetach(msg: Message): void {
    this.poller.stop();
    super.onBeforeDetach(msg);
  }

  private readonly _visibilityChanged = (): void => this._syncPolling();

  /** Poll exactly while the panel is on screen. */
  private _syncPolling(): void {
    if (this.isAttached && this.isVisible && document.visibilityState !== 'hidden') {
      this.poller.start();
    } else {
      this.poller.stop();
    }
  }

  private async _request(init: RequestInit, ...path: string[]): Promise<unknown> {
    const { baseUrl, settings } = this.options;
    const response = await ServerConnection.makeRequest(apiUrl(baseUrl, ...path), init, settings);
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        message = ((await response.json()) as { message?: string }).message ?? message;
      } catch {
        // not JSON: a proxy error page
      }
      throw new Error(message);
    }
    return response.json();
  }

  private async _poll(): Promise<void> {
    const n = this.poller.count;
    const config = this._needConfig || n % CONFIG_EVERY === 1;
    try {
      if (config) {
        const data = (await this._request({ method: 'GET' }, 'queues')) as { queues: IQueueJson[] };
        this._needConfig = false;
        const counts: Counts = {};
        this._paused = new Map();
        for (const queue of data.queues) {
          counts[queue.name] = queue.counts;
          this._paused.set(queue.name, queue.paused);
        }
        this._counts = counts;
      } else {
        this._counts = (await this._request({ method: 'GET' }, 'counts')) as Counts;
        this._needConfig = Object.keys(this._counts).some(name => !this._paused.has(name));
      }
      this._setStatus('live', false);
    } catch (error) {
      this._setStatus(`Mission Control unreachable: ${(error as Error).message}`, true);
      return;
    }
    this._render();
  }

  private _setStatus(text: string, failed: boolean): void {
    this._status.textContent = text;
    this._status.classList.toggle('fnb-lab-down', failed);
  }

  private async _setPaused(name: string, paused: boolean, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      const queue = (await this._request(
        {
          method: 'PATCH',
          body: JSON.stringify({ paused }),
          headers: { 'Content-Type': 'application/json' }
        },
        'queues',
        name
      )) as IQueueJson;
      this._paused.set(queue.name, queue.paused);
      this._counts[queue.name] = queue.counts;
      this._setStatus('live', false);
      this._render();
    } catch (error) {
      this._setStatus(`${paused ? 'pause' : 'resume'} ${name} failed: ${(error as Error).message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  /** Show the last answer. Rows are kept and updated in place (a button must not be
   * replaced between a press and its release), added and removed as queues come and go. */
  private _render(): void {
    const names = Object.keys(this._counts).sort();
    for (const [name, row] of this._rows) {
      if (!(name in this._counts)) {
        row.node.remove();
        this._rows.delete(name);
      }
    }
    for (const name of names) {
      const row = this._rows.get(name) ?? this._addRow(name);
      const counts = this._counts[name] ?? {};
      const paused = this._paused.get(name) ?? false;
      row.node.classList.toggle('fnb-lab-paused', paused);
      row.badge.hidden = !paused;
      row.button.textContent = paused ? 'Resume' : 'Pause';
      row.button.dataset.action = paused ? 'resume' : 'pause';
      row.button.title = `${paused ? 'Resume' : 'Pause'} queue ${name}`;
      const statuses = [...STATUSES, ...Object.keys(counts).filter(s => !STATUSES.includes(s))];
      for (const status of statuses) {
        let cell = row.cells.get(status);
        if (cell === undefined) {
          const holder = element('span', `fnb-lab-count fnb-lab-${status}`);
          holder.dataset.status = status;
          holder.title = status;
          cell = element('b', 'fnb-lab-n');
          holder.appendChild(cell);
          holder.appendChild(element('span', 'fnb-lab-label', status));
          row.counts.appendChild(holder);
          row.cells.set(status, cell);
        }
        const text = String(counts[status] ?? 0);
        if (cell.textContent !== text) {
          cell.textContent = text;
        }
      }
    }
    // Sorted order; appendChild moves a node, so only rows out of place move.
    names.forEach((name, index) => {
      const node = this._rows.get(name)!.node;
      if (this._queues.children[index] !== node) {
        this._queues.insertBefore(node, this._queues.children[index] ?? null);
      }
    });
    this._empty.hidden = names.length > 0;
  }

  private _addRow(name: string): IRow {
    const node = element('div', 'fnb-lab-queue');
    node.dataset.queue = name;
    const top = element('div', 'fnb-lab-queue-top');
    top.appendChild(element('span', 'fnb-lab-queue-name', name));
    const badge = element('span', 'fnb-lab-badge', 'paused');
    top.appendChild(badge);
    const button = element('button', 'fnb-lab-pause jp-Button');
    button.type = 'button';
    button.addEventListener('click', () => {
      const paused = this._paused.get(name) ?? false;
      void this._setPaused(name, !paused, button);
    });
    top.appendChild(button);
    node.appendChild(top);
    const counts = element('div', 'fnb-lab-counts');
    node.appendChild(counts);
    const row: IRow = { node, badge, button, counts, cells: new Map() };
    this._rows.set(name, row);
    this._queues.insertBefore(node, this._empty);
    return row;
  }

  private readonly _status: HTMLSpanElement;
  private readonly _queues: HTMLDivElement;
  private readonly _empty: HTMLDivElement;
  private readonly _rows = new Map<string, IRow>();
  private _counts: Counts = {};
  private _paused = new Map<string, boolean>();
  private _needConfig = false;
}
