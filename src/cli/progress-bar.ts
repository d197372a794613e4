import { progressRates, type Progress } from '../jobs/progress.js';
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
 * A progress report as one line: a bar and the share done, bytes and rows against their totals
 * when known ("~" marks an estimate), collections, throughput in bytes and rows per second, the
 * time left (progressRates, the same figures as the job records) and what is being read.
 * `secs`: time since the operation started. E.g.
 * "[########............] ~41% 3.10 MiB of ~7.50 MiB, 41,000 of ~100,000 rows, 2/5 collections, 1.20 MiB/s, 16,000 rows/s, ETA 0:04 orders".
 */
export function progressLine(p: Progress, secs: number): string {
  const about = p.estimated ? '~' : '';
  const share = p.percent !== undefined ? Math.min(100, p.percent) / 100 : p.bytesTotal ? Math.min(1, p.bytes / p.bytesTotal) : undefined;
  const rates = progressRates(p, secs);
  const parts: string[] = [];
  let bar = '';
  if (share !== undefined) {
    const width = 20;
    const full = Math.round(share * width);
    bar = `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${about}${Math.floor(share * 100)}% `;
  }
  parts.push(p.bytesTotal !== undefined && p.bytesTotal > 0 ? `${formatBytes(p.bytes)} of ${about}${formatBytes(p.bytesTotal)}` : formatBytes(p.bytes));
  parts.push(p.rowsTotal !== undefined ? `${formatCount(p.rows)} of ${about}${formatCount(p.rowsTotal)} rows` : `${formatCount(p.rows)} rows`);
  parts.push(`${p.collectionsDone}/${p.collectionsTotal} collections`);
  parts.push(`${formatBytes(Math.round(rates.throughput))}/s`);
  if (p.rows > 0) parts.push(`${formatCount(Math.round(rates.rowsPerSecond))} rows/s`);
  if (p.phase === 'transferring' && share !== undefined && share < 1 && rates.etaSeconds !== undefined) parts.push(`ETA ${formatClock(rates.etaSeconds)}`);
  const what = p.phase === 'finalizing' ? 'finalizing' : (p.collection ?? '');
  return `${bar}${parts.join(', ')}${what ? ` ${what}` : ''}`;
}

/** Seconds as a clock reads them: "0:35", "12:05", "2:03:09". */
export function formatClock(s: number): string {
  const t = Math.max(0, Math.round(s));
  const two = (n: number): string => String(n).padStart(2, '0');
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  return h > 0 ? `${h}:${two(m)}:${two(t % 60)}` : `${m}:${two(t % 60)}`;
}
