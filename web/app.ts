/**
 * The calibration page: plain DOM over the browser bundle. The model and the images never leave
 * the machine; calibration, histograms and agreement run in the SDK's Web Worker, so the page only
 * collects settings, shows progress and renders the result.
 */
import {
  CalibrationWorker, PRESETS, checkImageLayout, declaredLayout, imageInputShape, parseSpec, sha256Hex, sizeSpec,
  type CalibrationTable, type ImageCalibrationJob, type ImageCalibrationResult, type ImageIdentity, type InspectReport,
  type JobProgress, type PreprocessSpec, type TensorHistogram,
} from '../sdk/browser.js';

const $ = <T extends HTMLElement = HTMLInputElement>(id: string): T => document.getElementById(id) as T;

/** An image and its path inside what was dropped or chosen (the calibration order key). */
interface ImageItem {
  file: File;
  path: string;
}

const IMAGE_FILE = /\.(jpe?g|png|webp|gif|avif|bmp)$/i;
const PP_FIELDS = ['width', 'height', 'resize', 'shortSide', 'padValue', 'align', 'interpolation', 'channels', 'layout', 'scale', 'mean', 'std'] as const;

let worker = new CalibrationWorker();
let model: File | undefined;
let report: InspectReport | undefined;
let images: ImageItem[] = [];
let result: ImageCalibrationResult | undefined;
let progressEvents = 0;
/** Why the preprocessing does not fit the model (the CLI's checks), when it does not. */
let misfit: string | undefined;
const urls: string[] = [];

function setState(state: 'empty' | 'ready' | 'running' | 'done' | 'error', message?: string): void {
  document.body.dataset.state = state;
  const status = $('status');
  status.textContent = message ?? status.textContent;
  status.classList.toggle('error', state === 'error');
  $<HTMLButtonElement>('calibrate').disabled = state === 'running' || !model || !images.length || misfit !== undefined;
  $<HTMLButtonElement>('cancel').hidden = state !== 'running';
}

/** Ready when a model, images and a fitting preprocessing are there; else say what is missing. */
function settle(): void {
  if (!model) return setState('empty', 'Choose an ONNX model.');
  if (!images.length) return setState('empty', 'Now add images.');
  if (misfit) return setState('error', 'The preprocessing does not fit the model: see the red box under Preprocessing.');
  setState('ready', 'Ready to calibrate.');
}

/** Results belong to the model they were made with: a new model (or a failed one) removes them. */
function clearResults(): void {
  result = undefined;
  urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
  $('results').hidden = true;
  $('summary').innerHTML = '';
  $<HTMLTableElement>('layers').tBodies[0].innerHTML = '';
  $<HTMLProgressElement>('progress').value = 0;
}

// ---- inputs ----

/** Folder order as the Node CLI walks it: path segment by segment, by code point; hidden entries skipped. */
function byPath(a: ImageItem, b: ImageItem): number {
  const x = a.path.split('/'), y = b.path.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return x.length - y.length;
}

function addImages(items: ImageItem[]): void {
  const fresh = items.filter((i) => IMAGE_FILE.test(i.path) && !i.path.split('/').some((s) => s.startsWith('.')));
  images = [...images, ...fresh].sort(byPath);
  const shown = images.slice(0, 6).map((i) => i.path).join('\n');
  $('image-info').textContent = images.length
    ? `${images.length} image${images.length > 1 ? 's' : ''} (in this order):\n${shown}${images.length > 6 ? '\n…' : ''}`
    : 'no images (jpg, png, webp, gif, avif, bmp) found';
  settle();
}

async function setModel(file: File): Promise<void> {
  model = undefined;
  report = undefined;
  clearResults();
  const info = $('model-info');
  info.classList.remove('error');
  info.textContent = `${file.name}: reading…`;
  setState('empty', 'Reading the model…');
  try {
    report = await worker.inspect(file);
    model = file;
    const io = (v: InspectReport['inputs'][number]) => `${v.name} [${v.shape.join(', ')}] ${v.type}`;
    const ops = Object.values(report.ops).reduce((a, b) => a + b, 0);
    $('model-info').textContent = [
      `${file.name}: opset ${report.opset}, ${ops} nodes, ${(report.params / 1e6).toFixed(2)} M parameters`,
      `input ${report.inputs.map(io).join(', ')}`,
      `output ${report.outputs.map(io).join(', ')}`,
      ...(report.unsupported.length ? [`unsupported: ${report.unsupported.map((u) => u.op).join(', ')}`] : []),
    ].join('\n');
    fillSizeFromModel();
  } catch (e) {
    info.classList.add('error');
    info.textContent = `${file.name} cannot be calibrated: ${(e as Error).message}\nChoose an ONNX model file.`;
    // The fit of the preprocessing was the old model's.
    checkFit();
    return setState('error', `${file.name} is not a model p2calib can read; choose an ONNX model.`);
  }
  checkFit();
}

/** Files of a dropped directory entry, with their paths. */
async function readEntry(entry: FileSystemEntry, out: ImageItem[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    out.push({ file, path: entry.fullPath.replace(/^\//, '') });
    return;
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
    if (!batch.length) break;
    for (const e of batch) await readEntry(e, out);
  }
}

async function onDrop(e: DragEvent): Promise<void> {
  e.preventDefault();
  (e.currentTarget as HTMLElement).classList.remove('over');
  const items: ImageItem[] = [];
  for (const entry of [...(e.dataTransfer?.items ?? [])].map((i) => i.webkitGetAsEntry())) if (entry) await readEntry(entry, items);
  const onnx = items.find((i) => i.path.toLowerCase().endsWith('.onnx'));
  if (onnx) await setModel(onnx.file);
  const rest = items.filter((i) => i !== onnx);
  if (rest.length) addImages(rest);
}

for (const id of ['model-drop', 'image-drop']) {
  const zone = $(id);
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => void onDrop(e));
}
$('model-file').addEventListener('change', () => { const f = $('model-file').files?.[0]; if (f) void setModel(f); });
for (const id of ['image-files', 'image-folder']) {
  $(id).addEventListener('change', () => addImages([...($(id).files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }))));
}

// ---- settings ----

const field = (k: string) => $<HTMLInputElement | HTMLSelectElement>(`pp-${k}`);
/** 1/255 rather than 0.00392156862745098 where the fraction reads back as the same number. */
const scaleText = (v: number) => (v > 0 && v < 1 && 1 / (1 / v) === v && String(1 / v).length <= 6 ? `1/${1 / v}` : String(v));

function fillSpec(spec: PreprocessSpec): void {
  for (const k of PP_FIELDS) {
    const v = spec[k];
    field(k).value = v === undefined ? '' : Array.isArray(v) ? v.join(',') : typeof v === 'number' && k === 'scale' ? scaleText(v) : String(v);
  }
  if (!spec.align) field('align').value = '';
  fillSizeFromModel();
}

/** A number, or a fraction such as 1/255. */
function parseNumber(text: string, what: string): number {
  const [a, b] = text.split('/');
  const v = Number(a) / (b === undefined ? 1 : Number(b));
  if (!text.trim() || !Number.isFinite(v)) throw new Error(`${what}: "${text}" is not a number`);
  return v;
}

function specFromForm(): PreprocessSpec {
  const o: Record<string, unknown> = {};
  for (const k of PP_FIELDS) {
    const text = field(k).value.trim();
    if (!text) continue;
    if (k === 'mean' || k === 'std') {
      const parts = text.split(',').map((s) => parseNumber(s, k));
      o[k] = parts.length === 1 ? parts[0] : parts;
    } else if (k === 'width' || k === 'height' || k === 'shortSide' || k === 'padValue' || k === 'scale') {
      o[k] = parseNumber(text, k);
    } else {
      o[k] = text;
    }
  }
  return parseSpec(o, 'preprocessing');
}

const modelDims = () => (report?.inputs.length === 1 ? report.inputs[0].shape : undefined);

/** Width and height from the model where it fixes them, read at the layout its dims show (the
 *  form's otherwise): what the CLI's size defaults to. Done when a model or a preset is chosen,
 *  never over what the user typed. */
function fillSizeFromModel(): void {
  const dims = modelDims();
  if (dims?.length === 4) {
    const nhwc = (declaredLayout(dims) ?? field('layout').value) === 'NHWC';
    const [h, w] = nhwc ? [dims[1], dims[2]] : [dims[2], dims[3]];
    if (typeof h === 'number' && h > 0) field('height').value = String(h);
    if (typeof w === 'number' && w > 0) field('width').value = String(w);
  }
  updateInputShape();
}

/** The input shape the CLI would run the model at: its dims, dynamic ones from the form. */
function updateInputShape(): void {
  const dims = modelDims();
  if (!dims) return;
  const size = { width: Number(field('width').value) || undefined, height: Number(field('height').value) || undefined };
  const shape = imageInputShape(dims, { ...size, layout: declaredLayout(dims) ?? (field('layout').value as 'NCHW' | 'NHWC') });
  $('input-shape').value = (shape ?? dims).map((d) => (typeof d === 'number' && d > 0 ? d : '?')).join(',');
}

/** The CLI's checks of a preprocessing against the model (sdk/data/preprocess.ts), run on every
 *  change: a misfit is shown in the preprocessing box and keeps Calibrate disabled. */
function checkFit(): void {
  misfit = undefined;
  try {
    const spec = specFromForm();
    const dims = modelDims();
    if (dims) {
      checkImageLayout(dims, spec.layout);
      const shape = inputShapeFromForm();
      if (shape) sizeSpec(spec, shape);
    }
  } catch (e) {
    misfit = (e as Error).message;
  }
  const box = $('pp-error');
  box.hidden = misfit === undefined;
  box.textContent = misfit ?? '';
  if (document.body.dataset.state !== 'running') settle();
}

function inputShapeFromForm(): number[] | undefined {
  const text = $('input-shape').value.trim();
  if (!text) return undefined;
  const shape = text.split(/[,x\s]+/).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`the input shape "${text}" is not a list of positive integers`);
  return shape;
}

const ppPreset = $<HTMLSelectElement>('pp-preset');
for (const name of [...Object.keys(PRESETS), 'custom']) ppPreset.add(new Option(name, name, name === 'imagenet', name === 'imagenet'));
ppPreset.addEventListener('change', () => {
  if (ppPreset.value !== 'custom') fillSpec(parseSpec({ preset: ppPreset.value }));
  checkFit();
});
for (const k of PP_FIELDS) {
  field(k).addEventListener('change', () => {
    ppPreset.value = 'custom';
    if (k === 'width' || k === 'height' || k === 'layout') updateInputShape();
    checkFit();
  });
}
$('input-shape').addEventListener('change', checkFit);
fillSpec(parseSpec({ preset: 'imagenet' }));
// Each worker holds its own copy of the model and engines.
$('workers').value = String(Math.min(navigator.hardwareConcurrency || 1, 4));

/** Image names as the CLI records them: relative to the folder chosen or dropped (its name is the
 *  root), with each file's SHA-256. */
async function imageIdentities(): Promise<{ images: ImageIdentity[]; imageRoot?: string }> {
  const top = images[0].path.split('/')[0];
  const common = images.every((i) => i.path.includes('/') && i.path.split('/')[0] === top);
  const identities = await Promise.all(images.map(async (i) => ({
    name: common ? i.path.slice(top.length + 1) : i.path,
    sha256: await sha256Hex(new Uint8Array(await i.file.arrayBuffer())),
  })));
  return { images: identities, ...(common ? { imageRoot: top } : {}) };
}

async function jobFromForm(): Promise<ImageCalibrationJob> {
  const int = (id: string, label: string) => {
    const v = Number($(id).value);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${label} must be a positive integer`);
    return v;
  };
  return {
    ...(await imageIdentities()),
    modelFile: model!.name,
    inputShape: inputShapeFromForm(),
    preprocess: specFromForm(),
    pixelInput: $('pixel-input').checked,
    workers: int('workers', 'Workers'),
    qdqRounding: $<HTMLSelectElement>('qdq-rounding').value as 'onnx' | 'device',
    options: {
      preset: $<HTMLSelectElement>('preset').value as 'simple' | 'advanced' | 'advanced-dw',
      bits: Number($<HTMLSelectElement>('bits').value) as 8 | 16,
      iterations: int('iterations', 'Iterations'),
      batchSize: int('batch', 'Batch'),
      estimator: $<HTMLSelectElement>('estimator').value || undefined,
      biasCalibration: $<HTMLSelectElement>('bias-calibration').value as 'tidl' | 'devkit',
      biasMode: $<HTMLSelectElement>('bias-mode').value as 'mma' | 'int16',
      subsample: $('subsample').checked,
    },
  };
}

// ---- calibration ----

function onProgress(p: JobProgress): void {
  progressEvents++;
  $('progress').dataset.events = String(progressEvents);
  const total = p.total ?? images.length;
  $<HTMLProgressElement>('progress').value = (p.pass * total + p.done) / (p.passes * total);
  const what = p.stage === 'calibration' ? (p.pass === 0 ? 'activation ranges' : p.passes > 2 ? `bias calibration pass ${p.pass}/${p.passes - 1}` : 'bias calibration and SQNR')
    : p.stage === 'histograms' ? `histograms (${p.pass === 0 ? 'ranges' : 'counts'})` : 'float vs fixed-point agreement';
  $('status').textContent = `${what}: image ${p.done}/${total}`;
}

$('calibrate').addEventListener('click', async () => {
  if (!model || !images.length || misfit) return;
  let job: ImageCalibrationJob;
  try {
    job = await jobFromForm();
  } catch (e) {
    return setState('error', (e as Error).message);
  }
  progressEvents = 0;
  clearResults();
  setState('running', 'starting the worker…');
  const started = performance.now();
  try {
    result = await worker.calibrate(model, images.map((i) => i.file), job, onProgress);
  } catch (e) {
    return (e as Error).message === 'cancelled' ? setState('ready', 'Cancelled.') : setState('error', (e as Error).message);
  }
  $<HTMLProgressElement>('progress').value = 1;
  showResult(result, model.name, job.workers ?? 1, (performance.now() - started) / 1000);
  setState('done', `Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
});

$('cancel').addEventListener('click', () => {
  worker.terminate();
  worker = new CalibrationWorker();
});

// ---- results ----

const fmt = (v: number) => (v === 0 ? '0' : Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(2) : String(Number(v.toPrecision(4))));
const pow2 = (e: number) => `2^${e}`;
const spread = (v: number[]) => {
  const lo = Math.min(...v), hi = Math.max(...v);
  return lo === hi ? String(lo) : `${lo}…${hi}`;
};

function download(id: string, data: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([data], { type }));
  urls.push(url);
  $<HTMLAnchorElement>(id).href = url;
}

function showResult(r: ImageCalibrationResult, modelName: string, workers: number, seconds: number): void {
  const t = r.table;
  const sqnrs = Object.values(t.tensors).map((x) => x.sqnr).filter((x): x is number => x !== undefined && Number.isFinite(x));
  $('summary').innerHTML = '';
  const line = (text: string, cls?: string) => {
    const div = document.createElement('div');
    div.textContent = text;
    if (cls) div.className = cls;
    $('summary').append(div);
  };
  line(r.agreement
    ? `Float vs fixed-point top-1 agreement: ${r.agreement.top1.toFixed(1)} % on ${r.agreement.images} images (output "${r.agreement.output}")`
    : 'Top-1 agreement: not measured (no classification-shaped output)', 'big');
  line(`${modelName}: preset ${t.preset} (${t.estimator}), ${t.bits}-bit, bias calibration ${t.biasCalibration}, bias form ${t.biasMode}; `
    + `${t.images} images, input [${r.inputShape.join(', ')}], ${workers} worker${workers > 1 ? 's' : ''}, ${seconds.toFixed(1)} s`);
  line(`${Object.keys(t.tensors).length} quantized tensors, ${Object.keys(t.layers).length} weight layers; `
    + (sqnrs.length ? `SQNR ${fmt(Math.min(...sqnrs))} to ${fmt(Math.max(...sqnrs))} dB` : ''));
  line(t.input.pixels
    ? 'Input: raw 0..255 pixels (uint8); the exported models apply the preprocessing mean/scale themselves.'
    : 'Input: preprocessed float tensors, as the float model takes them.');
  download('download-qdq', r.qdq as BlobPart, 'application/octet-stream');
  download('download-calibrated', r.calibrated as BlobPart, 'application/octet-stream');
  download('download-json', r.json, 'application/json');
  fillTable(t);
  const select = $<HTMLSelectElement>('hist-select');
  select.innerHTML = '';
  for (const name of Object.keys(t.tensors)) select.add(new Option(name, name));
  $('results').hidden = false;
  drawHistogram(Object.keys(t.tensors)[0]);
}

function fillTable(t: CalibrationTable): void {
  const byOutput = new Map(Object.entries(t.layers).map(([name, l]) => [l.output, { name, ...l }]));
  const body = $<HTMLTableElement>('layers').tBodies[0];
  body.innerHTML = '';
  Object.entries(t.tensors).forEach(([name, q], i) => {
    const l = byOutput.get(name);
    const row = body.insertRow();
    row.dataset.tensor = name;
    const cell = (text: string, cls = '') => {
      const c = row.insertCell();
      c.textContent = text;
      c.className = cls;
      c.title = text;
    };
    cell(String(i + 1), 'num');
    cell(name, 'name');
    cell(l ? `${l.op} ${l.name}` : '', 'name');
    cell(`[${fmt(q.range[0])}, ${fmt(q.range[1])}]`);
    cell(`[${fmt(q.clip[0])}, ${fmt(q.clip[1])}]`);
    cell(`${q.signed ? 's' : 'u'}${q.bits}`);
    cell(pow2(q.scaleLog2));
    cell(l ? `${l.weightBits}-bit, ${l.weightScaleLog2.length > 1 ? `${pow2(Math.min(...l.weightScaleLog2))}…${pow2(Math.max(...l.weightScaleLog2))}` : pow2(l.weightScaleLog2[0])}${l.weightClip !== undefined ? ', clipped' : ''}` : '');
    cell(l ? spread(l.shift) : '', 'num');
    cell(q.sqnr === undefined ? '' : Number.isFinite(q.sqnr) ? q.sqnr.toFixed(1) : '∞', `num${q.sqnr !== undefined && q.sqnr < 20 ? ' low' : ''}`);
    row.addEventListener('click', () => {
      $<HTMLSelectElement>('hist-select').value = name;
      drawHistogram(name);
    });
  });
}

function drawHistogram(name: string): void {
  if (!result) return;
  const h: TensorHistogram = result.histograms[name];
  const q = result.table.tensors[name];
  const canvas = $<HTMLCanvasElement>('hist-canvas');
  const ctx = canvas.getContext('2d')!;
  const [W, H, left, right, top, bottom] = [canvas.width, canvas.height, 72, 16, 22, 34];
  const pw = W - left - right, ph = H - top - bottom;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  for (const row of $<HTMLTableElement>('layers').tBodies[0].rows) row.classList.toggle('selected', row.dataset.tensor === name);
  if (!h) return;
  const bins = h.counts.length;
  const step = h.max > h.min ? (h.max - h.min) / (bins - 1) : 0;
  let lo = Math.min(h.min - step / 2, q.clip[0], q.range[0]), hi = Math.max(h.max + step / 2, q.clip[1], q.range[1]);
  if (!(hi > lo)) [lo, hi] = [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.02;
  [lo, hi] = [lo - pad, hi + pad];
  const X = (v: number) => left + ((v - lo) / (hi - lo)) * pw;
  const log = $('hist-log').checked;
  const peak = Math.max(...h.counts);
  const Y = (c: number) => top + ph - (log ? Math.log1p(c) / Math.log1p(peak) : c / peak) * ph;

  // Outside the clip: what saturates.
  ctx.fillStyle = 'rgba(192, 57, 43, 0.08)';
  ctx.fillRect(left, top, X(q.clip[0]) - left, ph);
  ctx.fillRect(X(q.clip[1]), top, left + pw - X(q.clip[1]), ph);
  ctx.fillStyle = '#2f6fb3';
  let total = 0, outside = 0;
  h.counts.forEach((c, i) => {
    const centre = h.min + i * step;
    total += c;
    if (centre < q.clip[0] || centre > q.clip[1]) outside += c;
    if (!c) return;
    const x0 = X(centre - step / 2), x1 = X(centre + step / 2);
    ctx.fillRect(x0, Y(c), Math.max(1, x1 - x0), top + ph - Y(c));
  });
  ctx.strokeStyle = '#888';
  ctx.beginPath();
  ctx.moveTo(left, top + ph + 0.5);
  ctx.lineTo(left + pw, top + ph + 0.5);
  ctx.stroke();
  const vline = (v: number, color: string, dash: number[], label: string, up: boolean) => {
    const x = Math.round(X(v)) + 0.5;
    ctx.strokeStyle = color;
    ctx.setLineDash(dash);
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + ph);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.lineWidth = 1;
    ctx.fillStyle = color;
    ctx.font = '12px system-ui, sans-serif';
    ctx.textAlign = x > left + pw - 80 ? 'right' : 'left';
    ctx.fillText(label, x + (ctx.textAlign === 'right' ? -4 : 4), up ? top - 6 : top + 12);
  };
  vline(q.range[0], '#e67e22', [5, 4], `range ${fmt(q.range[0])}`, false);
  vline(q.range[1], '#e67e22', [5, 4], `range ${fmt(q.range[1])}`, false);
  vline(q.clip[0], '#c0392b', [], `clip ${fmt(q.clip[0])}`, true);
  vline(q.clip[1], '#c0392b', [], `clip ${fmt(q.clip[1])}`, true);
  ctx.fillStyle = '#5b6478';
  ctx.font = '12px system-ui, sans-serif';
  ctx.textAlign = 'center';
  for (const v of [lo + pad, ...(lo < 0 && hi > 0 ? [0] : []), hi - pad]) ctx.fillText(fmt(v), X(v), top + ph + 16);
  ctx.textAlign = 'right';
  ctx.fillText(log ? 'log count' : 'count', left - 6, top + 10);
  ctx.fillText(String(peak), left - 6, top + 24);
  canvas.dataset.tensor = name;
  $('hist-info').textContent = `${name}: float values over ${result.table.images} images in [${fmt(h.min)}, ${fmt(h.max)}], ${bins} bins; `
    + `calibrated range [${fmt(q.range[0])}, ${fmt(q.range[1])}] → power-of-2 clip [${fmt(q.clip[0])}, ${fmt(q.clip[1])}] `
    + `(${q.signed ? 'signed' : 'unsigned'} ${q.bits}-bit, step ${pow2(-q.scaleLog2)}); ${total ? ((100 * outside) / total).toFixed(3) : 0} % of values saturate.`;
}

$('hist-select').addEventListener('change', () => drawHistogram($<HTMLSelectElement>('hist-select').value));
$('hist-log').addEventListener('change', () => drawHistogram($<HTMLSelectElement>('hist-select').value));
