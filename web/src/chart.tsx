/**
 * A tiny inline SVG chart of a source's recent backups: bars for the logical size, a line for the
 * duration (each on its own scale). No chart library: a few rectangles and one polyline.
 */
import { bytes, duration } from './format.js';

export interface ChartPoint {
  id: string;
  logicalBytes: number;
  durationMs: number;
}

const W = 300;
const H = 64;
const PAD = 4;

export function HistoryChart({ points, label }: { points: ChartPoint[]; label: string }) {
  if (points.length === 0) return <p class="muted small">No backups yet.</p>;
  const maxBytes = Math.max(1, ...points.map((p) => p.logicalBytes));
  const maxMs = Math.max(1, ...points.map((p) => p.durationMs));
  const slot = (W - PAD * 2) / Math.max(points.length, 12);
  const barW = Math.max(2, slot * 0.62);
  const y = (v: number, max: number): number => H - PAD - (v / max) * (H - PAD * 2);
  const line = points.map((p, i) => `${(PAD + i * slot + slot / 2).toFixed(1)},${y(p.durationMs, maxMs).toFixed(1)}`).join(' ');
  const last = points[points.length - 1]!;
  const summary = `${label}: ${points.length} backups; sizes up to ${bytes(maxBytes)}, last ${bytes(last.logicalBytes)}; durations up to ${duration(maxMs)}, last ${duration(last.durationMs)}`;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary} preserveAspectRatio="none">
        <line x1={PAD} x2={W - PAD} y1={H - PAD} y2={H - PAD} class="chart-axis" />
        {points.map((p, i) => (
          <rect key={p.id} class="chart-bar" x={PAD + i * slot + (slot - barW) / 2} width={barW} y={y(p.logicalBytes, maxBytes)} height={Math.max(1, H - PAD - y(p.logicalBytes, maxBytes))}>
            <title>{`${p.id}: ${bytes(p.logicalBytes)}, ${duration(p.durationMs)}`}</title>
          </rect>
        ))}
        {points.length > 1 ? <polyline class="chart-line" points={line} /> : null}
      </svg>
      <figcaption class="chart-legend">
        <span>
          <i class="key key-bar" aria-hidden="true" />
          size (max {bytes(maxBytes)})
        </span>
        <span>
          <i class="key key-line" aria-hidden="true" />
          duration (max {duration(maxMs)})
        </span>
      </figcaption>
    </figure>
  );
}
