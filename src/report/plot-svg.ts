/**
 * A hand-written SVG line chart (no chart library) and its PNG rendering with resvg.
 *
 * `lineChartSvg` is pure: a spec in, SVG text out. Every data series is one `<path class="series">`
 * (a gap in the data, a null y, starts a new subpath `M` inside the same element), dashed series carry
 * `stroke-dasharray`, and markers are `<circle class="marker">`. The legend is given separately from the
 * series, so a chart can key colors and line styles apart (color = run, style = train / validation).
 * Text uses the DejaVu Sans family, which `svgToPng` loads from the system fonts.
 */
import { Resvg } from '@resvg/resvg-js';

export interface ChartSeries {
  label: string;
  /** A CSS color. */
  color: string;
  /** (x, y) in data units, x increasing; a null or non-finite y breaks the line there. */
  points: readonly (readonly [number, number | null])[];
  dashed?: boolean;
  /** A dot on every point. */
  markers?: boolean;
}

export interface LegendEntry {
  label: string;
  color: string;
  dashed?: boolean;
  markers?: boolean;
  /** Extra space above this entry, to set a group of entries apart. */
  gapBefore?: boolean;
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly ChartSeries[];
  legend: readonly LegendEntry[];
  /** Pixels; the PNG keeps these proportions. */
  width?: number;
  height?: number;
}

/** Distinct colors in a readable order (Tableau 10). */
export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

const FONT = 'DejaVu Sans';

interface TextStyle {
  size?: number;
  fill?: string;
  anchor?: 'start' | 'middle' | 'end';
  bold?: boolean;
  transform?: string;
}
const DASH = '7 4';
const MARGIN = { left: 72, right: 210, top: 48, bottom: 58 };

/**
 * Tick values covering [lo, hi] with a step of 1, 2 or 5 times a power of ten, about `count` of them;
 * the first tick is <= lo and the last >= hi, so the axis can span exactly the ticks.
 */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || hi < lo) throw new Error(`niceTicks: bad range [${lo}, ${hi}]`);
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.05;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const raw = (hi - lo) / Math.max(1, count);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** A tick label with as many decimals as the tick step needs. */
function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(decimals, 10));
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const r2 = (v: number) => Number(v.toFixed(2));
const finitePoint = (p: readonly [number, number | null]): p is readonly [number, number] =>
  Number.isFinite(p[0]) && p[1] !== null && Number.isFinite(p[1]);

/** The chart as a standalone SVG document (white background, width x height pixels). */
export function lineChartSvg(spec: LineChartSpec): string {
  const width = spec.width ?? 900;
  const height = spec.height ?? 520;
  const plot = { x0: MARGIN.left, y0: MARGIN.top, x1: width - MARGIN.right, y1: height - MARGIN.bottom };
  const all = spec.series.flatMap((s) => s.points.filter(finitePoint));
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xTicks = all.length === 0 ? [0, 1] : niceTicks(Math.min(...xs), Math.max(...xs), 8);
  const yTicks = all.length === 0 ? [0, 1] : niceTicks(Math.min(...ys), Math.max(...ys), 6);
  const [xMin, xMax] = [xTicks[0], xTicks[xTicks.length - 1]];
  const [yMin, yMax] = [yTicks[0], yTicks[yTicks.length - 1]];
  const sx = (x: number) => r2(plot.x0 + ((x - xMin) / (xMax - xMin)) * (plot.x1 - plot.x0));
  const sy = (y: number) => r2(plot.y1 - ((y - yMin) / (yMax - yMin)) * (plot.y1 - plot.y0));
  const text = (x: number, y: number, s: string, o: TextStyle = {}) =>
    `<text x="${r2(x)}" y="${r2(y)}" font-family="${FONT}" font-size="${o.size ?? 12}" fill="${o.fill ?? '#222'}"` +
    `${o.anchor ? ` text-anchor="${o.anchor}"` : ''}${o.bold ? ' font-weight="bold"' : ''}${o.transform ? ` transform="${o.transform}"` : ''}>${escapeXml(s)}</text>`;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    text(width / 2, 28, spec.title, { size: 16, bold: true, anchor: 'middle' }),
  ];
  // grid, ticks and tick labels
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1;
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  for (const t of xTicks) {
    const x = sx(t);
    out.push(
      `<line class="grid" x1="${x}" y1="${plot.y0}" x2="${x}" y2="${plot.y1}" stroke="#e6e6e6" stroke-width="1"/>`,
    );
    out.push(`<line x1="${x}" y1="${plot.y1}" x2="${x}" y2="${plot.y1 + 5}" stroke="#444" stroke-width="1"/>`);
    out.push(text(x, plot.y1 + 19, tickLabel(t, xStep), { anchor: 'middle' }));
  }
  for (const t of yTicks) {
    const y = sy(t);
    out.push(
      `<line class="grid" x1="${plot.x0}" y1="${y}" x2="${plot.x1}" y2="${y}" stroke="#e6e6e6" stroke-width="1"/>`,
    );
    out.push(`<line x1="${plot.x0 - 5}" y1="${y}" x2="${plot.x0}" y2="${y}" stroke="#444" stroke-width="1"/>`);
    out.push(text(plot.x0 - 8, y + 4, tickLabel(t, yStep), { anchor: 'end' }));
  }
  out.push(
    `<rect x="${plot.x0}" y="${plot.y0}" width="${plot.x1 - plot.x0}" height="${plot.y1 - plot.y0}" fill="none" stroke="#444" stroke-width="1"/>`,
  );
  out.push(text((plot.x0 + plot.x1) / 2, height - 16, spec.xLabel, { size: 13, anchor: 'middle' }));
  const yMid = (plot.y0 + plot.y1) / 2;
  out.push(text(20, yMid, spec.yLabel, { size: 13, anchor: 'middle', transform: `rotate(-90 20 ${r2(yMid)})` }));
  if (all.length === 0) out.push(text((plot.x0 + plot.x1) / 2, yMid, 'no data', { anchor: 'middle', fill: '#888' }));

  for (const s of spec.series) {
    let d = '';
    let pen = false;
    for (const p of s.points) {
      if (!finitePoint(p)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${sx(p[0])},${sy(p[1])}`;
      pen = true;
    }
    if (d === '') continue;
    const dash = s.dashed ? ` stroke-dasharray="${DASH}"` : '';
    out.push(
      `<path class="series" data-label="${escapeXml(s.label)}" d="${d}" fill="none" stroke="${s.color}" stroke-width="2" stroke-linejoin="round"${dash}/>`,
    );
    if (s.markers) {
      for (const p of s.points.filter(finitePoint))
        out.push(`<circle class="marker" cx="${sx(p[0])}" cy="${sy(p[1])}" r="3.5" fill="${s.color}"/>`);
    }
  }

  // legend, right of the plot
  const lx = plot.x1 + 18;
  let y = plot.y0 - 12;
  for (const e of spec.legend) {
    y += e.gapBefore ? 34 : 22;
    const dash = e.dashed ? ` stroke-dasharray="${DASH}"` : '';
    out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 30}" y2="${y}" stroke="${e.color}" stroke-width="2"${dash}/>`);
    if (e.markers) out.push(`<circle cx="${lx + 15}" cy="${y}" r="3.5" fill="${e.color}"/>`);
    const label = e.label.length > 24 ? `${e.label.slice(0, 23)}…` : e.label;
    out.push(text(lx + 38, y + 4, label));
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The SVG rendered to PNG, `width` pixels wide (height in proportion), text in DejaVu Sans. */
export function svgToPng(svg: string, width = 900): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'width', value: width },
    background: '#ffffff',
    font: { loadSystemFonts: true, defaultFontFamily: FONT },
  });
  return resvg.render().asPng();
}
