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
    // Clear to the end of the line: the line may be shorter than the one it replaces.
    this.stream.write(`\r${fitProgressLine(this.label, p, secs, this.stream.columns || 80)}\x1b[K`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

/**
 * `label` and the progress line in fewer than `columns` characters (the last column is left
 * free: a terminal that wraps at it would start a new line on every redraw). See progressLine
 * for what is dropped first when the terminal is narrow.
 */
export function fitProgressLine(label: string, p: Progress, secs: number, columns: number): string {
  const room = Math.max(1, columns - 1);
  return `${label} ${progressLine(p, secs, room - label.length - 1)}`.slice(0, room);
}

/** The shortest a collection name is cut to (with "…") before it is left out altogether. */
const SHORTEST_NAME = 8;

/**
 * A progress report as one line: a bar and the share done, bytes and rows against their totals
 * when known ("~" marks an estimate), collections, throughput in bytes and rows per second, the
 * time left (progressRates, the same figures as the job records) and what is being read.
 * `secs`: time since the operation started. E.g.
 * "[########............] ~41% 3.10 MiB of ~7.50 MiB, 41,000 of ~100,000 rows, 2/5 collections, 1.20 MiB/s, 16,000 rows/s, ETA 0:04 orders".
 *
 * `width` (characters; default unlimited): the line is made to fit by leaving parts out in a
 * fixed order, least useful first, until it does: rows/s; the collection counter; the bar; the
 * collection name, cut with "…" down to 8 characters, then left out; the totals of rows, then of
 * bytes ("of …"); the rows; the bytes; the throughput; the ETA ("finalizing", which stands in
 * for the ETA at the end, goes with it). The share done is kept to the end, and what is left is cut at `width`. So 60 columns keep the share, bytes, throughput and
 * ETA; 40 keep the share, throughput and ETA.
 */
export function progressLine(p: Progress, secs: number, width = Infinity): string {
  const about = p.estimated ? '~' : '';
  const share = p.percent !== undefined ? Math.min(100, p.percent) / 100 : p.bytesTotal ? Math.min(1, p.bytes / p.bytesTotal) : undefined;
  const rates = progressRates(p, secs);
  const hasBytesTotal = p.bytesTotal !== undefined && p.bytesTotal > 0;
  // Every part, then the ones left out or shortened as the width asks.
  const line = {
    bar: share !== undefined ? `[${'#'.repeat(Math.round(share * 20))}${'.'.repeat(20 - Math.round(share * 20))}]` : '',
    percent: share !== undefined ? `${about}${Math.floor(share * 100)}%` : '',
    bytes: hasBytesTotal ? `${formatBytes(p.bytes)} of ${about}${formatBytes(p.bytesTotal ?? 0)}` : formatBytes(p.bytes),
    rows: p.rowsTotal !== undefined ? `${formatCount(p.rows)} of ${about}${formatCount(p.rowsTotal)} rows` : `${formatCount(p.rows)} rows`,
    counter: `${p.collectionsDone}/${p.collectionsTotal} collections`,
    throughput: `${formatBytes(Math.round(rates.throughput))}/s`,
    rowsPerSecond: p.rows > 0 ? `${formatCount(Math.round(rates.rowsPerSecond))} rows/s` : '',
    eta: p.phase === 'transferring' && share !== undefined && share < 1 && rates.etaSeconds !== undefined ? `ETA ${formatClock(rates.etaSeconds)}` : '',
    what: p.phase === 'finalizing' ? 'finalizing' : (p.collection ?? ''),
  };
  const render = (): string => {
    const head = [line.bar, line.percent].filter(Boolean).join(' ');
    const list = [line.bytes, line.rows, line.counter, line.throughput, line.rowsPerSecond, line.eta].filter(Boolean).join(', ');
    return [head, list, line.what].filter(Boolean).join(' ');
  };
  const steps: (() => void)[] = [
    () => (line.rowsPerSecond = ''),
    () => (line.counter = ''),
    () => (line.bar = ''),
    () => {
      // "finalizing" stands where the ETA was (none while finalizing): kept like the ETA.
      if (p.phase === 'finalizing') return;
      // The name gets what is left of the width, if that is enough to recognise it.
      const without = render().length - line.what.length;
      const room = width - without;
      line.what = room >= SHORTEST_NAME && line.what.length > room ? `${line.what.slice(0, room - 1)}…` : room >= line.what.length ? line.what : '';
    },
    () => (line.rows = `${formatCount(p.rows)} rows`),
    () => (line.bytes = formatBytes(p.bytes)),
    () => (line.rows = ''),
    () => (line.bytes = ''),
    () => (line.throughput = ''),
    () => (line.eta = ''),
  ];
  let text = render();
  for (const step of steps) {
    if (text.length <= width) return text;
    step();
    text = render();
  }
  return text.length <= width ? text : text.slice(0, Math.max(0, width));
}

/** Seconds as a clock reads them: "0:35", "12:05", "2:03:09". */
export function formatClock(s: number): string {
  const t = Math.max(0, Math.round(s));
  const two = (n: number): string => String(n).padStart(2, '0');
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  return h > 0 ? `${h}:${two(m)}:${two(t % 60)}` : `${m}:${two(t % 60)}`;
}
