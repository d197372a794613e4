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
    const line = `${this.label} ${progressLine(p, secs)}`;
    const cols = this.stream.columns || 100;
    this.stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length + 10))}`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

/**
 * A progress report as one line: share done (with "about" when estimated), collections, rows and
 * bytes against their totals when known, the rate and the time left. `secs`: time since start.
 * E.g. "[########............]  about 41% 2/5 collections, 41,000 of about 100,000 rows, 3.1 MiB of about 7.5 MiB (1.2 MiB/s, about 4 s left) orders".
 */
export function progressLine(p: Progress, secs: number): string {
  const about = p.estimated ? 'about ' : '';
  const share = p.percent !== undefined ? p.percent / 100 : p.bytesTotal ? Math.min(1, p.bytes / p.bytesTotal) : undefined;
  let bar = '';
  let left = '';
  if (share !== undefined) {
    const width = 20;
    const full = Math.round(Math.min(1, share) * width);
    bar = `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${about}${(share * 100).toFixed(0).padStart(3)}% `;
    if (share > 0.01 && share < 1 && p.phase === 'transferring') left = `, ${about}${formatSeconds((secs * (1 - share)) / share)} left`;
  }
  const rate = `${formatBytes(Math.round(p.bytes / Math.max(0.001, secs)))}/s`;
  const rows = p.rowsTotal !== undefined ? `${formatCount(p.rows)} of ${about}${formatCount(p.rowsTotal)} rows` : `${formatCount(p.rows)} rows`;
  const bytes = p.bytesTotal !== undefined && p.bytesTotal > 0 ? `${formatBytes(p.bytes)} of ${about}${formatBytes(p.bytesTotal)}` : formatBytes(p.bytes);
  const what = p.phase === 'finalizing' ? 'finalizing' : (p.collection ?? '');
  return `${bar}${p.collectionsDone}/${p.collectionsTotal} collections, ${rows}, ${bytes} (${rate}${left}) ${what}`;
}

/** Seconds as people read them: "45 s", "3 min 5 s", "2 h 10 min". */
function formatSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${t % 60} s`;
  return `${Math.floor(t / 3600)} h ${Math.floor((t % 3600) / 60)} min`;
}
