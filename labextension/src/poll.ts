/**
 * A poller that never starts two requests closer than `intervalMs` apart and never
 * overlaps them: the next request starts `intervalMs` after the previous one started,
 * or when it ended if that was later. Stopping and starting again keeps that spacing
 * (a sidebar toggled open and shut cannot make requests faster). No DOM here: the
 * node unit tests drive it with a fake clock.
 */
export interface IClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: IClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: handle => clearTimeout(handle as ReturnType<typeof setTimeout>)
};

export class Poller {
  constructor(
    private readonly request: () => Promise<void>,
    readonly intervalMs = 2000,
    private readonly clock: IClock = realClock
  ) {}

  /** True between `start()` and `stop()`. */
  get running(): boolean {
    return this._running;
  }

  /** Requests started so far. */
  get count(): number {
    return this._count;
  }

  start(): void {
    if (this._running) {
      return;
    }
    this._running = true;
    this._schedule();
  }

  stop(): void {
    this._running = false;
    if (this._timer !== null) {
      this.clock.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _schedule(): void {
    if (!this._running || this._inflight || this._timer !== null) {
      return;
    }
    const wait = Math.max(0, this._lastStart + this.intervalMs - this.clock.now());
    this._timer = this.clock.setTimeout(() => {
      this._timer = null;
      void this._tick();
    }, wait);
  }

  private async _tick(): Promise<void> {
    if (!this._running) {
      return;
    }
    this._inflight = true;
    this._count += 1;
    // The request goes out synchronously (fetch is called before its first await): the
    // spacing counts from after that, so no two requests are ever closer, even when the
    // page's thread stalls between here and the fetch.
    let pending: Promise<void>;
    try {
      pending = this.request();
    } catch (error) {
      pending = Promise.reject(error);
    }
    this._lastStart = this.clock.now();
    try {
      await pending;
    } catch {
      // the request reports its own errors; polling goes on
    } finally {
      this._inflight = false;
      this._schedule();
    }
  }

  private _running = false;
  private _inflight = false;
  private _timer: unknown = null;
  private _lastStart = -Infinity;
  private _count = 0;
}
