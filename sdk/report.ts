/**
 * The layer-by-layer report of a calibration: one self-contained HTML file (inline SVG and CSS,
 * no script, nothing fetched) with the per-layer SQNR chart, each tensor's histogram with its
 * observed range and PACT2 clip, each weight layer's per-channel weight ranges against the chosen
 * scale, the robustness diagnostics when calibration.json has them, a float-vs-fixed scatter of
 * the outputs, and the per-layer table (also as CSV).
 */
import type { Calibration } from './calibration.js';
import type { CalibrationTable } from './export/table.js';
import { activationHistograms, type TensorHistogram } from './histograms.js';
import type { Sample } from './quant/calibrate.js';

export interface ReportData {
  title: string;
  table: CalibrationTable;
  /** Float activation histograms over `images` samples, by tensor. */
  histograms: Record<string, TensorHistogram>;
  /** Per weight layer: each output channel's float weight [min, max] (after clipping). */
  weightRanges: Record<string, [number, number][]>;
  /** Per output: (float, fixed) value pairs, a deterministic subsample. */
  scatter: Record<string, [number, number][]>;
  images: number;
}

/** Run the float and fixed-point models over `samples` (a few calibration images) for the report. */
export async function reportData(cal: Calibration, samples: Sample[], title: string, maxPoints = 1500): Promise<ReportData> {
  const table = cal.table;
  const histograms = samples.length ? await activationHistograms(cal.model, samples, Object.keys(table.tensors), { bins: 128 }) : {};
  const weightRanges: ReportData['weightRanges'] = {};
  for (const l of cal.state.layers) {
    const r: [number, number][] = Array.from({ length: l.channels }, () => [Infinity, -Infinity]);
    const v = l.analysis.values;
    for (let i = 0; i < v.length; i++) {
      const c = r[l.analysis.layout.channelOf(i)];
      c[0] = Math.min(c[0], v[i]);
      c[1] = Math.max(c[1], v[i]);
    }
    weightRanges[l.node.name] = r;
  }
  const scatter: ReportData['scatter'] = {};
  for (const s of samples) {
    const [f, q] = [await cal.model.run(s), await cal.run(s)];
    for (const name of Object.keys(q)) {
      const pts = (scatter[name] ??= []);
      const step = Math.max(1, Math.ceil((f[name].length * samples.length) / maxPoints));
      for (let i = 0; i < f[name].length; i += step) pts.push([f[name][i], q[name][i]]);
    }
  }
  return { title, table, histograms, weightRanges, scatter, images: samples.length };
}

interface Row {
  tensor: string; layer: string; op: string; bits: number; signed: boolean; scaleLog2: number;
  rangeMin: number; rangeMax: number; clipMin: number; clipMax: number; sqnr?: number; shift: string; weightScaleLog2: string;
}

/** One row per calibrated tensor, with its weight layer's shifts and scales where it has one. */
export function layerRows(table: CalibrationTable): Row[] {
  const byOutput = new Map(Object.entries(table.layers).map(([name, l]) => [l.output, { name, l }]));
  const ops = new Map(Object.entries(table.integers ?? {}).flatMap(([, s]) => s.outputs.map((o) => [o.name, s.ops.join('+')] as const)));
  return Object.entries(table.tensors).map(([tensor, t]) => {
    const w = byOutput.get(tensor);
    return {
      tensor, layer: w?.name ?? '', op: w ? w.l.op : ops.get(tensor) ?? 'input', bits: t.bits, signed: t.signed, scaleLog2: t.scaleLog2,
      rangeMin: t.range[0], rangeMax: t.range[1], clipMin: t.clip[0], clipMax: t.clip[1], sqnr: t.sqnr,
      shift: w ? [...new Set(w.l.shift)].join(' ') : '', weightScaleLog2: w ? [...new Set(w.l.weightScaleLog2)].join(' ') : '',
    };
  });
}

const CSV_COLUMNS: (keyof Row)[] = ['tensor', 'layer', 'op', 'bits', 'signed', 'scaleLog2', 'rangeMin', 'rangeMax', 'clipMin', 'clipMax', 'sqnr', 'shift', 'weightScaleLog2'];

/** The per-layer table as CSV (RFC 4180 quoting). */
export function layersCsv(table: CalibrationTable): string {
  const cell = (v: unknown) => {
    const s = v === undefined ? '' : typeof v === 'number' && !Number.isFinite(v) ? String(v) : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return `${[CSV_COLUMNS.join(','), ...layerRows(table).map((r) => CSV_COLUMNS.map((c) => cell(r[c])).join(','))].join('\n')}\n`;
}

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v: number | undefined, d = 2) => (v === undefined ? '' : Number.isFinite(v) ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : v.toFixed(d)) : String(v));
const LOW = { 8: 12, 16: 30 } as Record<number, number>;

function sqnrChart(rows: Row[]): string {
  const measured = rows.filter((r) => r.sqnr !== undefined);
  const h = 14, w = 860, left = 260, maxDb = Math.max(40, ...measured.map((r) => (Number.isFinite(r.sqnr!) ? r.sqnr! : 0)));
  const x = (db: number) => left + (Math.max(0, Math.min(db, maxDb)) / maxDb) * (w - left - 50);
  const bars = measured.map((r, i) => {
    const db = Number.isFinite(r.sqnr!) ? r.sqnr! : maxDb;
    const low = db < (LOW[r.bits] ?? 12);
    return `<g class="${low ? 'low' : ''}"><title>${esc(r.tensor)}: ${fmt(r.sqnr, 1)} dB</title><text x="${left - 6}" y="${i * h + 11}" text-anchor="end">${esc(r.tensor.slice(0, 38))}</text>`
      + `<rect x="${left}" y="${i * h + 2}" width="${(x(db) - left).toFixed(1)}" height="${h - 4}"/><text x="${x(db) + 4}" y="${i * h + 11}">${fmt(r.sqnr, 1)}</text></g>`;
  }).join('');
  const ticks = Array.from({ length: Math.floor(maxDb / 10) + 1 }, (_, k) => k * 10)
    .map((db) => `<line class="grid" x1="${x(db)}" x2="${x(db)}" y1="0" y2="${measured.length * h}"/><text x="${x(db)}" y="${measured.length * h + 12}" text-anchor="middle">${db}</text>`).join('');
  return `<svg class="chart" width="${w}" height="${measured.length * h + 18}" role="img" aria-label="SQNR per layer">${ticks}${bars}</svg>`;
}

function histogramSvg(name: string, h: TensorHistogram | undefined, range: [number, number], clip: [number, number]): string {
  const W = 260, H = 90;
  if (!h) return `<div class="hist"><div class="name">${esc(name)}</div><p class="none">not computed by the float model</p></div>`;
  const lo = Math.min(h.min, range[0], clip[0]), hi = Math.max(h.max, range[1], clip[1]);
  const span = hi - lo || 1;
  const x = (v: number) => ((v - lo) / span) * W;
  const bins = h.counts.length;
  const logMax = Math.log10(1 + Math.max(...h.counts));
  const bw = ((h.max - h.min) / Math.max(1, bins - 1)) / span * W;
  const bars = Array.from(h.counts, (c, i) => {
    if (!c) return '';
    const bh = (Math.log10(1 + c) / logMax) * (H - 14);
    return `<rect x="${(x(h.min + (i * (h.max - h.min)) / Math.max(1, bins - 1)) - bw / 2).toFixed(1)}" y="${(H - 12 - bh).toFixed(1)}" width="${Math.max(1, bw).toFixed(1)}" height="${bh.toFixed(1)}"/>`;
  }).join('');
  const vline = (v: number, cls: string) => `<line class="${cls}" x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="0" y2="${H - 12}"/>`;
  return `<div class="hist"><div class="name" title="${esc(name)}">${esc(name)}</div><svg width="${W}" height="${H}" role="img" aria-label="histogram of ${esc(name)}">`
    + `<g class="bars">${bars}</g>${vline(range[0], 'range')}${vline(range[1], 'range')}${vline(clip[0], 'clip')}${vline(clip[1], 'clip')}`
    + `<text x="0" y="${H - 1}">${fmt(lo)}</text><text x="${W}" y="${H - 1}" text-anchor="end">${fmt(hi)}</text></svg></div>`;
}

function weightSvg(name: string, ranges: [number, number][], scaleLog2: number[], bits: number): string {
  const W = Math.min(860, Math.max(200, ranges.length * 6)), H = 110;
  const limits = ranges.map((_, c) => (2 ** (bits - 1) - 1) * 2 ** -scaleLog2[scaleLog2.length > 1 ? c : 0]);
  const m = Math.max(...limits, ...ranges.map(([a, b]) => Math.max(-a, b))) || 1;
  const y = (v: number) => H / 2 - (v / m) * (H / 2 - 4);
  const bw = W / ranges.length;
  const bars = ranges.map(([a, b], c) => `<rect x="${(c * bw).toFixed(1)}" y="${y(b).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${Math.max(0.5, y(a) - y(b)).toFixed(1)}"><title>channel ${c}: ${fmt(a, 4)} .. ${fmt(b, 4)}</title></rect>`).join('');
  const lim = limits.map((l, c) => `<line class="clip" x1="${(c * bw).toFixed(1)}" x2="${((c + 1) * bw).toFixed(1)}" y1="${y(l).toFixed(1)}" y2="${y(l).toFixed(1)}"/><line class="clip" x1="${(c * bw).toFixed(1)}" x2="${((c + 1) * bw).toFixed(1)}" y1="${y(-l).toFixed(1)}" y2="${y(-l).toFixed(1)}"/>`).join('');
  return `<div class="weights"><div class="name">${esc(name)} — ${ranges.length} channels, ${scaleLog2.length > 1 ? 'per-channel' : 'per-tensor'} scale${scaleLog2.length > 1 ? 's' : ` 2^${scaleLog2[0]}`}</div>`
    + `<svg width="${W}" height="${H}" role="img" aria-label="weight ranges of ${esc(name)}"><g class="bars">${bars}</g>${lim}<line class="grid" x1="0" x2="${W}" y1="${H / 2}" y2="${H / 2}"/></svg></div>`;
}

function scatterSvg(name: string, pts: [number, number][]): string {
  const S = 320;
  const all = pts.flat();
  const lo = Math.min(...all), hi = Math.max(...all);
  const span = hi - lo || 1;
  const p = (v: number) => 6 + ((v - lo) / span) * (S - 12);
  const dots = pts.map(([f, q]) => `<circle cx="${p(f).toFixed(1)}" cy="${(S - p(q)).toFixed(1)}" r="1.6"/>`).join('');
  return `<div class="scatter"><div class="name">${esc(name)}: fixed (y) against float (x), ${pts.length} values, ${fmt(lo)} .. ${fmt(hi)}</div>`
    + `<svg width="${S}" height="${S}" role="img" aria-label="float vs fixed ${esc(name)}"><line class="grid" x1="${p(lo)}" y1="${S - p(lo)}" x2="${p(hi)}" y2="${S - p(hi)}"/><g class="dots">${dots}</g></svg></div>`;
}

interface LooseVerdict { node?: string; op?: string; tensor?: string; bits?: number; sqnr?: number; threshold?: number; cause?: { text?: string }; remedy?: { text?: string } }

function diagnostics(table: CalibrationTable): string {
  const t = table as unknown as { diagnostics?: { verdicts?: LooseVerdict[] }; compromises?: Record<string, { kind?: string; tensor?: string; from?: number; to?: number; reason?: string }[]> };
  const verdicts = t.diagnostics?.verdicts ?? [];
  const compromises = Object.entries(t.compromises ?? {}).flatMap(([layer, list]) => list.map((c) => ({ layer, ...c })));
  if (!t.diagnostics && !t.compromises) return '<p class="none">This calibration.json has no diagnostics section.</p>';
  const v = verdicts.length
    ? `<table><tr><th>layer</th><th>op</th><th>tensor</th><th>bits</th><th>SQNR dB</th><th>cause</th><th>remedy</th></tr>${verdicts.map((d) => `<tr class="low"><td>${esc(d.node ?? '')}</td><td>${esc(d.op ?? '')}</td><td>${esc(d.tensor ?? '')}</td><td>${esc(d.bits ?? '')}</td><td>${fmt(d.sqnr, 1)}</td><td>${esc(d.cause?.text ?? '')}</td><td>${esc(d.remedy?.text ?? '')}</td></tr>`).join('')}</table>`
    : '<p>No layer below the verdict threshold.</p>';
  const c = compromises.length
    ? `<h3>Compromises the device's rules forced</h3><table><tr><th>layer</th><th>kind</th><th>tensor</th><th>scale log2</th><th>reason</th></tr>${compromises.map((x) => `<tr><td>${esc(x.layer)}</td><td>${esc(x.kind ?? '')}</td><td>${esc(x.tensor ?? '')}</td><td>${x.from ?? ''} → ${x.to ?? ''}</td><td>${esc(x.reason ?? '')}</td></tr>`).join('')}</table>` : '';
  return v + c;
}

const CSS = `body{font:13px/1.4 system-ui,sans-serif;margin:24px;color:#1d2733;max-width:1400px}h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #d0d7de}
svg text{font-size:10px;fill:#333}.chart rect{fill:#2f6fb3}.chart .low rect{fill:#c0392b}.grid{stroke:#bbb;stroke-dasharray:2 2}
.bars rect{fill:#2f6fb3}.clip{stroke:#c0392b;stroke-width:1.5}.range{stroke:#27ae60;stroke-width:1.5;stroke-dasharray:3 2}.dots circle{fill:#2f6fb3;fill-opacity:.45}
.grid-wrap{display:flex;flex-wrap:wrap;gap:12px}.hist,.scatter{border:1px solid #e1e4e8;padding:6px}.name{font-weight:600;font-size:11px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:260px}
.weights .name{max-width:none}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #d0d7de;padding:2px 6px;text-align:left}tr.low td{background:#fdecea}.none{color:#777}
.legend span{display:inline-block;margin-right:14px}.k{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}`;

/** The report as one HTML document. */
export function reportHtml(d: ReportData): string {
  const t = d.table;
  const rows = layerRows(t);
  const p = t.provenance;
  const summary = [
    `preset ${esc(t.preset)} (${esc(t.estimator)}), ${t.bits}-bit, bias calibration ${esc(t.biasCalibration)}, bias form ${esc(t.biasMode)}`,
    `${t.images} calibration images${p?.model?.sha256 ? `; model ${esc(p.model.file ?? '')} sha256 ${esc(p.model.sha256.slice(0, 16))}…` : ''}${p ? `; p2calib ${esc(p.tool.version)}` : ''}`,
    `histograms and scatter over ${d.images} of the calibration images`,
  ];
  const layerTable = `<table><tr>${['tensor', 'layer', 'op', 'bits', 'signed', 'scale log2', 'range', 'clip', 'SQNR dB', 'shift', 'weight scale log2'].map((h) => `<th>${h}</th>`).join('')}</tr>`
    + rows.map((r) => `<tr class="${r.sqnr !== undefined && r.sqnr < (LOW[r.bits] ?? 12) ? 'low' : ''}"><td>${esc(r.tensor)}</td><td>${esc(r.layer)}</td><td>${esc(r.op)}</td><td>${r.bits}</td><td>${r.signed}</td><td>${r.scaleLog2}</td>`
      + `<td>${fmt(r.rangeMin)} .. ${fmt(r.rangeMax)}</td><td>${fmt(r.clipMin)} .. ${fmt(r.clipMax)}</td><td>${fmt(r.sqnr, 1)}</td><td>${esc(r.shift)}</td><td>${esc(r.weightScaleLog2)}</td></tr>`).join('') + '</table>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(d.title)} — p2calib calibration report</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><style>${CSS}</style></head>
<body><h1>${esc(d.title)} — calibration report</h1>${summary.map((s) => `<p>${s}</p>`).join('')}
<h2 id="sqnr">SQNR per layer (fixed point against float, on the calibration images)</h2><p class="legend"><span>red: below ${LOW[8]} dB at 8 bits (${LOW[16]} dB at 16)</span></p>${sqnrChart(rows)}
<h2 id="diagnostics">Diagnostics</h2>${diagnostics(t)}
<h2 id="scatter">Outputs: fixed point against float</h2><div class="grid-wrap">${Object.entries(d.scatter).map(([n, pts]) => scatterSvg(n, pts)).join('') || '<p class="none">no images</p>'}</div>
<h2 id="histograms">Activation histograms</h2><p class="legend"><span><i class="k" style="background:#2f6fb3"></i>float values (log count)</span><span><i class="k" style="background:#27ae60"></i>calibrated range</span><span><i class="k" style="background:#c0392b"></i>power-of-2 clip</span></p>
<div class="grid-wrap">${rows.map((r) => histogramSvg(r.tensor, d.histograms[r.tensor], [r.rangeMin, r.rangeMax], [r.clipMin, r.clipMax])).join('')}</div>
<h2 id="weights">Weights: per-channel ranges against the chosen scale</h2><p class="legend"><span><i class="k" style="background:#2f6fb3"></i>channel min .. max (float, after clipping)</span><span><i class="k" style="background:#c0392b"></i>±(2^(bits-1)-1) / 2^scale: what the scale holds</span></p>
${Object.entries(t.layers).map(([name, l]) => (d.weightRanges[name] ? weightSvg(name, d.weightRanges[name], l.weightScaleLog2, l.weightBits) : '')).join('')}
<h2 id="table">Per-layer table</h2>${layerTable}
</body></html>
`;
}
