// The shared models (../shared/assets) as the robustness and accuracy scripts calibrate and score
// them: input shape, preprocessing, calibration and evaluation images (rendered text for the OCR
// models, darkened photos for the low-light ones), and each task's float-vs-fixed agreement figure.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { textLines } from '../dist/cli/demo/textlines.js';
import { parseSpec, presetSpec, sizeSpec } from '../dist/sdk/data/preprocess.js';
import { openDataset } from '../dist/sdk/node/datasets.js';
import { loadImageTensor } from '../dist/sdk/node/images.js';

export const A = resolve('../shared/assets');
if (!existsSync(A)) {
  console.error(`${process.argv[1]?.replace(/.*\//, '') ?? 'this script'} needs the reference assets in ${A}`);
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

export const MODELS = {
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

/** A model's sized preprocessing, and its evaluation images (after its calibration ones) as tensors. */
export async function prepare(m, model) {
  const nhwc = m.spec.layout === 'NHWC';
  const spec = sizeSpec({ ...m.spec, width: m.shape[nhwc ? 2 : 3], height: m.shape[nhwc ? 1 : 2] }, m.shape);
  const files = await m.images();
  const calibration = files.slice(0, m.calibrate);
  const inputs = [];
  for (const f of files.slice(m.calibrate, m.calibrate + m.evaluate)) inputs.push(await loadImageTensor(f, spec));
  const floats = [];
  for (const x of inputs) floats.push(await model.run(x));
  return { spec, calibration, inputs, floats, output: m.output ?? model.outputs[0].name };
}

/** Scores one quantized runner against float on the prepared images: output SQNR (dB) and the task
 *  figure. `run(x)` returns the output tensor `p.output` reads. */
export function scorer(m) {
  const sums = [0, 0];
  const agree = { same: 0, total: 0, se: 0, n: 0 };
  return {
    add(f, q) {
      for (let j = 0; j < f.length; j++) {
        sums[0] += f[j] * f[j];
        sums[1] += (q[j] - f[j]) ** 2;
      }
      const a = m.psnr ? m.psnr(f, q) : m.agree(f, q);
      for (const key of Object.keys(a)) agree[key] += a[key];
    },
    result: () => ({
      sqnr: sums[1] === 0 ? Infinity : 10 * Math.log10(sums[0] / sums[1]),
      figure: m.psnr ? 10 * Math.log10(agree.n / agree.se) : agree.total ? (100 * agree.same) / agree.total : undefined,
    }),
  };
}
