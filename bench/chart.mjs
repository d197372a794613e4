// A small dependency-free SVG line chart for the bench's scaling curve (bench/run.js --scaling).
// Panels side by side sharing one x label; each panel has its own y axis from 0, "nice" ticks,
// a marker and value label on every measured point and a legend. Only the points given are
// drawn: lines join measurements, nothing is interpolated or extrapolated beyond them.

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

/** Tick values from 0 to at least `max`: about 5 steps of 1, 2 or 5 × 10^k. */
export function niceTicks(max) {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const label = (v) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '') || '0');

/**
 * An SVG document (string) with one line chart per panel.
 * spec: { title, subtitle?, xLabel, panels: [{ yLabel, series: [{ name, points: [[x, y], …], dashed? }] }] }
 * x and y in the caller's units (the labels say which); points are sorted by x.
 */
export function lineChartsSvg({ title, subtitle = '', xLabel, panels }) {
  const pw = 440; // panel width
  const ph = 300; // panel height
  const m = { l: 60, r: 20, t: 30, b: 50 };
  const top = subtitle ? 56 : 40;
  const legendH = 20 * Math.max(...panels.map((p) => p.series.length));
  const width = panels.length * pw;
  const height = top + ph + legendH + 10;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`);
  const allX = panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x)));
  const xTicks = niceTicks(Math.max(...allX, 0));
  const xMax = xTicks[xTicks.length - 1];
  panels.forEach((panel, pi) => {
    const ox = pi * pw;
    const x0 = ox + m.l;
    const x1 = ox + pw - m.r;
    const y0 = top + ph - m.b;
    const y1 = top + m.t;
    const yTicks = niceTicks(Math.max(...panel.series.flatMap((s) => s.points.map(([, y]) => y)), 0));
    const yMax = yTicks[yTicks.length - 1];
    const sx = (x) => x0 + (x / xMax) * (x1 - x0);
    const sy = (y) => y0 - (y / yMax) * (y0 - y1);
    for (const t of yTicks) {
      out.push(`<line x1="${x0}" x2="${x1}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${x0 - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${label(t)}</text>`);
    }
    for (const t of xTicks) {
      out.push(`<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${y0}" y2="${y0 + 4}" stroke="#333"/>`);
      out.push(`<text x="${sx(t).toFixed(1)}" y="${y0 + 18}" text-anchor="middle">${label(t)}</text>`);
    }
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}" stroke="#333"/><line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y1}" stroke="#333"/>`);
    out.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 38}" text-anchor="middle">${esc(xLabel)}</text>`);
    out.push(`<text transform="translate(${ox + 16} ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">${esc(panel.yLabel)}</text>`);
    panel.series.forEach((s, si) => {
      const color = COLORS[si % COLORS.length];
      const pts = [...s.points].sort((a, b) => a[0] - b[0]);
      if (pts.length > 1) {
        out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
      }
      for (const [x, y] of pts) {
        out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${label(x)} → ${label(y)}`)}</title></circle>`);
        out.push(`<text x="${(sx(x) + 5).toFixed(1)}" y="${(sy(y) - 6).toFixed(1)}" fill="${color}" font-size="10">${label(y)}</text>`);
      }
      const ly = top + ph + 4 + si * 20;
      out.push(`<line x1="${x0}" x2="${x0 + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
      out.push(`<text x="${x0 + 30}" y="${ly + 4}">${esc(s.name)}</text>`);
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
