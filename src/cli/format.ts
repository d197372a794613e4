/** Human-readable output helpers for the CLI. */

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** "1 row", "15,607 rows". */
export function plural(n: number, noun: string): string {
  return `${formatCount(n)} ${noun}${n === 1 ? '' : 's'}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Left-aligned columns, numbers right-aligned (a column whose cells all look numeric). */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[-\d.,]+( [KMGT]?i?B)?$|^-$/.test(r[i] ?? '')));
  return all
    .map((r) =>
      r
        .map((cell, i) => (numeric[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * A record as `key: value` lines, one per field, in `order` first and then the rest as they come:
 * nested objects on the lines below their key, indented by two spaces; array items as `- item`;
 * null, absent and empty values as `none`; lines inside a string indented under its key.
 */
export function keyValueLines(record: Record<string, unknown>, order: readonly string[] = [], indent = ''): string[] {
  const keys = [...order.filter((k) => k in record), ...Object.keys(record).filter((k) => !order.includes(k))];
  return keys.flatMap((k) => valueLines(`${indent}${k}:`, record[k], indent));
}

function valueLines(head: string, value: unknown, indent: string): string[] {
  const inner = `${indent}  `;
  if (Array.isArray(value) && value.length > 0) {
    return [head, ...value.flatMap((item) => valueLines(`${inner}-`, item, inner))];
  }
  if (isRecord(value) && Object.keys(value).length > 0) return [head, ...keyValueLines(value, [], inner)];
  return [`${head} ${scalar(value, inner)}`];
}

function scalar(value: unknown, indent: string): string {
  if (value === null || value === undefined || (Array.isArray(value) && value.length === 0) || (isRecord(value) && Object.keys(value).length === 0)) return 'none';
  if (typeof value === 'string') return value.replace(/\r?\n/g, `\n${indent}`);
  return String(value);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
