// The README's robustness table (issue 14): every shared model calibrated at every preset in 8
// and 16 bits, then, on images held apart from calibration, its fixed-point output and the QDQ
// export in onnxruntime-node (the form TIDL imports, ONNX Runtime's default optimizations)
// against float, and the task's own agreement figure. Long: an npm script, not a test.
//   npm run robustness                     print the table
//   npm run robustness -- --write          also replace the table in README.md
//   npm run robustness -- ppocrv4-rec      only some models (names as in MODELS)
//   npm run robustness -- --bits 16        only one bit width (not with --write)
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { textLines } from '../dist/cli/demo/textlines.js';
import { parseSpec, presetSpec, sizeSpec } from '../dist/sdk/data/preprocess.js';
import { loadModel } from '../dist/sdk/model.js';
import { calibrateImages } from '../dist/sdk/node/calibrate-images.js';
import { openDataset } from '../dist/sdk/node/datasets.js';
import { loadImageTensor } from '../dist/sdk/node/images.js';

const A = resolve('../shared/assets');
if (!existsSync(A)) {
  console.error(`robustness needs the reference assets in ${A}`);
  process.exit(2);
}
const COCO = openDataset(join(A, 'images/coco128-val/images')).files;
const IMAGENET = openDataset(join(A, 'images/imagenet-sample')).files;
const shared = (name, over = {}) => ({ ...parseSpec(JSON.parse(readFileSync(join(A, 'preprocess', `${name}.json`), 'utf8')), name), ...over });
/** Low-light input: the photo darkened to a quarter of its values, as the assets README suggests. */
const dark = (spec) => ({ ...spec, scale: spec.scale * 0.25 });

// ---- the tasks' agreement figures, float output `f` against fixed/QDQ output `q` ----

const argmax = (x, from, n) => {
  let best = 0;
  for (let k = 1; k < n; k++) if (x[from + k] > x[from + best]) best = k;
  return best;
};
/** Fraction of images (top-1) or of pixels (per-pixel class) where the argmax agrees. */
const classAgreement = (classes, layout) => (f, q) => {
  let same = 0, total = 0;
  const n = f.length / classes;
  for (let i = 0; i < n; i++) {
    // NHWC scores: classes innermost; NCHW: classes outermost.
    const pick = (x) => {
      if (layout === 'last') return argmax(x, i * classes, classes);
      let best = 0;
      for (let c = 1; c < classes; c++) if (x[c * n + i] > x[best * n + i]) best = c;
      return best;
    };
    same += +(pick(f) === pick(q));
    total++;
  }
  return { same, total };
};
/** Of the anchors float scores above `thr`, how many fixed point scores above it too. */
const keptDetections = (score, thr) => (f, q) => {
  let kept = 0, total = 0;
  for (const [i, s] of score(f)) {
    if (s <= thr) continue;
    total++;
    if (score(q).get(i) > thr) kept++;
  }
  return { same: kept, total };
};
const yoloxScores = (x) => {
  const out = new Map();
  for (let a = 0; a < x.length / 85; a++) out.set(a, x[a * 85 + 4] * x[a * 85 + 5 + argmax(x, a * 85 + 5, 80)]);
  return out;
};
const ultrafaceScores = (x) => new Map(Array.from({ length: x.length / 2 }, (_, a) => [a, x[2 * a + 1]]));
/** PaddleOCR DB's text map: pixels above 0.3 in float and fixed point, F1 of the two masks. */
const textMapF1 = (f, q) => {
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < f.length; i++) {
    const [a, b] = [f[i] > 0.3, q[i] > 0.3];
    tp += +(a && b);
    fp += +(!a && b);
    fn += +(a && !b);
  }
  return { same: 2 * tp, total: 2 * tp + fp + fn };
};
const KEYS = readFileSync(join(A, 'labels/ppocr-keys-v1.txt'), 'utf8').split('\n').filter((l, i, all) => i < all.length - 1 || l);
/** CTC greedy decoding over ppocr-keys-v1 (index 0 blank, the last one a space). */
const ctcText = (x, steps, classes) => {
  let text = '', prev = -1;
  for (let t = 0; t < steps; t++) {
    const k = argmax(x, t * classes, classes);
    if (k !== prev && k !== 0) text += k <= KEYS.length ? KEYS[k - 1] : ' ';
    prev = k;
  }
  return text;
};
const textAgreement = (f, q) => {
  const [steps, classes] = [f.length / 6625, 6625];
  return { same: +(ctcText(f, steps, classes) === ctcText(q, steps, classes)), total: 1 };
};
/** PSNR (dB) of an image output (values clipped to 0..1), over the channels `pick` keeps. */
const psnr = (pick) => (f, q) => {
  let se = 0, n = 0;
  for (let i = 0; i < f.length; i++) {
    if (!pick(i)) continue;
    const c = (v) => Math.min(1, Math.max(0, v));
    se += (c(f[i]) - c(q[i])) ** 2;
    n++;
  }
  return { se, n };
};

// ---- text images for the OCR models (the demo's renderer), written to a temporary folder ----

const TMP = mkdtempSync(join(tmpdir(), 'p2calib-robustness-'));
process.on('exit', () => rmSync(TMP, { recursive: true, force: true }));
async function textLineFiles(seed, count) {
  const lines = (await textLines(seed, 2 * count)).filter((l) => !l.rotated);
  return lines.map((l, i) => {
    const file = join(TMP, `line-${seed}-${i}.png`);
    writeFileSync(file, l.png);
    return file;
  });
}
/** Pages of 640x480: several text lines at seeded positions on a light background. */
async function textPageFiles(seed, count) {
  const lines = (await textLines(seed, 12 * count)).filter((l) => !l.rotated);
  const files = [];
  for (let p = 0; p < count; p++) {
    const parts = [];
    let top = 10;
    for (const l of lines.slice(6 * p, 6 * p + 6)) {
      const meta = await sharp(l.png).metadata();
      const width = Math.min(600, meta.width), height = Math.round((meta.height * width) / meta.width);
      if (top + height > 470) break;
      parts.push({ input: await sharp(l.png).resize(width, height).toBuffer(), top, left: 10 + ((p * 37 + top) % Math.max(1, 620 - width)) });
      top += height + 15;
    }
    const file = join(TMP, `page-${seed}-${p}.png`);
    await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 235, g: 232, b: 225 } } }).composite(parts).png().toFile(file);
    files.push(file);
  }
  return files;
}

const MODELS = {
  'mobilenetv2-fp32': {
    file: 'mobilenetv2-12-fp32.onnx', shape: [1, 3, 224, 224], spec: presetSpec('imagenet'), images: () => IMAGENET, calibrate: 16, evaluate: 64,
    figure: 'top-1 agreement %', agree: classAgreement(1000, 'last'),
  },
  'mobilenetv2-int8': {
    file: 'mobilenetv2-12-int8.onnx', shape: [1, 3, 224, 224], spec: presetSpec('imagenet'), images: () => IMAGENET, calibrate: 4, evaluate: 16,
    figure: 'top-1 agreement %', agree: classAgreement(1000, 'last'),
  },
  yolox: {
    file: 'yolox-nano.onnx', shape: [1, 3, 416, 416], spec: presetSpec('yolox'), images: () => COCO, calibrate: 16, evaluate: 32,
    figure: 'float detections (obj·cls > 0.5) kept %', agree: keptDetections(yoloxScores, 0.5),
  },
  deeplab: {
    file: 'deeplabv3-mobilenetv2-257-nhwc.onnx', shape: [1, 257, 257, 3], spec: presetSpec('deeplab'), images: () => COCO, calibrate: 16, evaluate: 32,
    figure: 'pixel-class agreement %', agree: classAgreement(21, 'last'),
  },
  ultraface: {
    file: 'ultraface-rfb-320.onnx', shape: [1, 3, 240, 320], spec: presetSpec('ultraface'), images: () => COCO, calibrate: 16, evaluate: 32,
    figure: 'float faces (score > 0.7) kept %', agree: keptDetections(ultrafaceScores, 0.7), output: 'scores',
  },
  'ppocrv4-det': {
    file: 'ppocrv4-det.onnx', shape: [1, 3, 480, 640], spec: shared('ppocrv4-det'), images: () => textPageFiles(11, 24), calibrate: 8, evaluate: 16,
    figure: 'text-map F1 at 0.3 %', agree: textMapF1,
  },
  'ppocrv4-rec': {
    file: 'ppocrv4-rec.onnx', shape: [1, 3, 48, 320], spec: shared('ppocrv4-rec'), images: () => textLineFiles(12, 48), calibrate: 16, evaluate: 32,
    figure: 'decoded text agreement %', agree: textAgreement,
  },
  'agllnet-256': {
    file: 'agllnet-256.onnx', shape: [1, 3, 256, 256], spec: dark(shared('agllnet-256')), images: () => COCO, calibrate: 4, evaluate: 8,
    figure: 'PSNR dB (darkened photos)', psnr: psnr((i) => i % 10 >= 4 && i % 10 <= 6),
  },
  'tbefn-180x320': {
    file: 'tbefn-180x320.onnx', shape: [1, 3, 180, 320], spec: dark(shared('tbefn-180x320')), images: () => COCO, calibrate: 8, evaluate: 16,
    figure: 'PSNR dB (darkened photos)', psnr: psnr(() => true),
  },
};
const args = process.argv.slice(2);
const write = args.includes('--write');
const bitsAt = args.indexOf('--bits');
const onlyBits = bitsAt < 0 ? undefined : Number(args[bitsAt + 1]);
if (onlyBits !== undefined && ((onlyBits !== 8 && onlyBits !== 16) || write)) {
  console.error('--bits takes 8 or 16, and not with --write (the README table holds both)');
  process.exit(2);
}
const names = args.filter((a, i) => !a.startsWith('--') && (bitsAt < 0 || i !== bitsAt + 1));
const CONFIGS = ['simple', 'advanced', 'advanced-dw'].flatMap((preset) => [8, 16].filter((b) => !onlyBits || b === onlyBits).map((bits) => ({ preset, bits })));
const status = (text) => process.stderr.isTTY && process.stderr.write(`\r${text}\x1b[K`);
const dB = (s, e) => (e === 0 ? Infinity : 10 * Math.log10(s / e));
const rows = [];
const started = Date.now();

for (const name of names.length ? names : Object.keys(MODELS)) {
  const m = MODELS[name];
  if (!m) {
    console.error(`unknown model "${name}" (models: ${Object.keys(MODELS).join(', ')})`);
    process.exit(2);
  }
  const model = await loadModel(readFileSync(join(A, 'models', m.file)), { inputShape: m.shape });
  const spec = sizeSpec({ ...m.spec, width: m.shape[m.spec.layout === 'NHWC' ? 2 : 3], height: m.shape[m.spec.layout === 'NHWC' ? 1 : 2] }, m.shape);
  const files = await m.images();
  const calibration = files.slice(0, m.calibrate);
  const evaluation = files.slice(m.calibrate, m.calibrate + m.evaluate);
  const inputs = [];
  for (const f of evaluation) inputs.push(await loadImageTensor(f, spec));
  const floats = [];
  for (const x of inputs) floats.push(await model.run(x));
  const output = m.output ?? model.outputs[0].name;
  const row = { name, m, results: [] };
  for (const c of CONFIGS) {
    const label = `${c.preset} ${c.bits}-bit`;
    status(`${name} ${label}: calibrating`);
    let cal;
    try {
      cal = await calibrateImages(model, calibration, spec, { preset: c.preset, bits: c.bits });
    } catch (e) {
      row.results.push({ ...c, error: e.message });
      console.error(`\n${name} ${label}: ${e.message}`);
      continue;
    }
    const session = await ort.InferenceSession.create(cal.toQdqOnnx(), { logSeverityLevel: 3 });
    const sums = { fixed: [0, 0], qdq: [0, 0] };
    const agree = { fixed: { same: 0, total: 0, se: 0, n: 0 }, qdq: { same: 0, total: 0, se: 0, n: 0 } };
    for (const [i, x] of inputs.entries()) {
      status(`${name} ${label}: evaluating ${i + 1}/${inputs.length}`);
      const f = floats[i][output];
      const fixed = (await cal.run(x))[output];
      const res = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, m.shape) });
      const qdq = res[output].data;
      for (const [k, q] of [['fixed', fixed], ['qdq', qdq]]) {
        for (let j = 0; j < f.length; j++) {
          sums[k][0] += f[j] * f[j];
          sums[k][1] += (q[j] - f[j]) ** 2;
        }
        const a = m.psnr ? m.psnr(f, q) : m.agree(f, q);
        for (const key of Object.keys(a)) agree[k][key] += a[key];
      }
    }
    await session.release();
    const figure = (a) => (m.psnr ? 10 * Math.log10(a.n / a.se) : a.total ? (100 * a.same) / a.total : undefined);
    const r = { ...c, fixed: dB(...sums.fixed), qdq: dB(...sums.qdq), agreeFixed: figure(agree.fixed), agreeQdq: figure(agree.qdq), verdicts: cal.table.diagnostics.verdicts.length };
    row.results.push(r);
    status('');
    console.error(`${name} ${label}: fixed ${r.fixed.toFixed(1)} dB, QDQ ${r.qdq.toFixed(1)} dB, ${m.figure} ${r.agreeFixed?.toFixed(1)} (QDQ ${r.agreeQdq?.toFixed(1)}), ${r.verdicts} verdicts`);
  }
  rows.push(row);
}

const f = (v) => (v === undefined ? '–' : v === Infinity ? '∞' : v.toFixed(1));
const cell = (row, bits, key) => ['simple', 'advanced', 'advanced-dw'].map((p) => {
  const r = row.results.find((x) => x.preset === p && x.bits === bits);
  return !r || r.error ? '✗' : f(r[key]);
}).join(' / ');
const ok = (row, bits) => ['simple', 'advanced', 'advanced-dw'].map((p) => (row.results.find((x) => x.preset === p && x.bits === bits && !x.error) ? '✓' : '✗')).join(' ');
const table = [
  '| model [input] (calibration / evaluation images) | calibrates 8-bit | calibrates 16-bit | output SQNR fixed vs float, 8-bit | 16-bit | QDQ in onnxruntime vs float, 8-bit | 16-bit | task figure | fixed point, 8-bit | 16-bit | QDQ, 8-bit | 16-bit |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.m.file} [${r.m.shape.slice(1).join('×')}] (${r.m.calibrate} / ${r.m.evaluate}) | ${ok(r, 8)} | ${ok(r, 16)} | ${cell(r, 8, 'fixed')} | ${cell(r, 16, 'fixed')} | ` +
    `${cell(r, 8, 'qdq')} | ${cell(r, 16, 'qdq')} | ${r.m.figure} | ${cell(r, 8, 'agreeFixed')} | ${cell(r, 16, 'agreeFixed')} | ${cell(r, 8, 'agreeQdq')} | ${cell(r, 16, 'agreeQdq')} |`),
].join('\n');
console.log(table);
if (write) {
  const readme = readFileSync('README.md', 'utf8');
  const begin = '<!-- robustness:begin -->', end = '<!-- robustness:end -->';
  if (!readme.includes(begin)) {
    console.error('README.md has no robustness markers');
    process.exit(1);
  }
  const minutes = ((Date.now() - started) / 60000).toFixed(0);
  const stamp = `Produced by \`npm run robustness -- --write\` on ${new Date().toISOString().slice(0, 10)} (${minutes} min). Each cell: simple / advanced / advanced-dw.`;
  writeFileSync('README.md', readme.replace(new RegExp(`${begin}[\\s\\S]*${end}`), `${begin}\n${stamp}\n\n${table}\n${end}`));
}
