/**
 * Giving the event loop a turn during long synchronous work (better-sqlite3 runs every statement
 * synchronously): signals, HTTP requests and lock refreshes wait at most about `sliceMs` for it.
 */
export class Pacer {
  private since = performance.now();

  /** @param sliceMs longest stretch of work between two turns of the event loop, in ms */
  constructor(private readonly sliceMs = 10) {}

  /** Whether the current stretch is over (cheap: a clock read). */
  due(): boolean {
    return performance.now() - this.since >= this.sliceMs;
  }

  /** Lets timers, I/O and signal handlers run (setImmediate comes after pending I/O callbacks). */
  async pause(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.since = performance.now();
  }
}
