import type { Progress } from '../jobs/progress.js';
import { formatBytes, formatCount } from './format.js';

/**
 * One status line on a terminal's stderr, redrawn at most ten times a second; silent when
 * stderr is not a TTY so logs and pipes stay clean.
 */
export class ProgressBar {
  private last = 0;
  private drawn = false;
  private readonly started = Date.now();

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = Boolean(process.stderr.isTTY),
  ) {}

  update(p: Progress): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100 && p.phase === 'transferring') return;
    this.last = now;
    const secs = Math.max(0.001, (now - this.started) / 1000);
    const rate = `${formatBytes(Math.round(p.bytes / secs))}/s`;
    let bar = '';
    if (p.bytesTotal) {
      const share = Math.min(1, p.bytes / p.bytesTotal);
      const width = 20;
      const full = Math.round(share * width);
      bar = `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(share * 100).toFixed(0).padStart(3)}% `;
    }
    const what = p.phase === 'finalizing' ? 'finalizing' : (p.collection ?? '');
    const line =
      `${this.label} ${bar}${p.collectionsDone}/${p.collectionsTotal} collections, ` +
      `${formatCount(p.rows)} rows, ${formatBytes(p.bytes)} (${rate}) ${what}`;
    const cols = this.stream.columns || 100;
    this.stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length + 10))}`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}
