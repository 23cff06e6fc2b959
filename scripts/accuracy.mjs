// The README's accuracy table: each shared model calibrated with each preset (and the extra range
// estimators), then evaluated in float, in p2calib's fixed-point engine, and as the exported QDQ
// model in onnxruntime-node: the task's metric where the assets have labels, top-1 or pixel
// agreement with float and the output SQNR; the models without labels (OCR, faces, low-light) by
// their float-vs-fixed figure of shared-models.mjs and the output SQNR. Long (tens of minutes): an
// npm script, not a test.
//   npm run accuracy                      print the table
//   npm run accuracy -- --write           also replace the table in README.md
//   npm run accuracy -- mobilenetv2       only some models (mobilenetv2, yolox, deeplab, ultraface,
//                                         ppocrv4-det, ppocrv4-rec, agllnet-256, tbefn-180x320)
//   npm run accuracy -- --config advanced-dw --config 'advanced-dw, 16-bit'   only some configurations
//   npm run accuracy -- --no-qdq          skip the QDQ models in onnxruntime (quicker, for development)
//   npm run accuracy -- --mixed-precision yolox mobilenetv2   the mixed-precision curve: advanced-dw
//                                         at factors 1.0, 1.1, 1.25, 1.5, 2.0 (--factors 1,1.5 for others)
//   npm run accuracy -- --eval-images N   evaluate on the first N images only (quicker, labelled models)
//   npm run accuracy -- --held-out        evaluate on the images not used for calibration only
//                                         (labelled models), to check a change is not tuned to them
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { presetSpec, sizeSpec } from '../dist/sdk/data/preprocess.js';
import { loadModel } from '../dist/sdk/model.js';
import { COCO_PANOPTIC_TO_VOC } from '../dist/sdk/metrics/segmentation.js';
import { calibrateImages } from '../dist/sdk/node/calibrate-images.js';
import { openDataset } from '../dist/sdk/node/datasets.js';
import { evaluate } from '../dist/sdk/node/evaluate.js';
import { A, MODELS as SHARED, prepare, scorer } from './shared-models.mjs';

const COCO = join(A, 'images/coco128-val');
const CONFIGS = {
  simple: { preset: 'simple' },
  advanced: { preset: 'advanced' },
  'advanced-dw': { preset: 'advanced-dw' },
  'advanced-dw, minmax': { preset: 'advanced-dw', estimator: 'minmax' },
  'advanced-dw, entropy': { preset: 'advanced-dw', estimator: 'entropy' },
  'advanced-dw, mse': { preset: 'advanced-dw', estimator: 'mse' },
  'advanced-dw, 16-bit': { preset: 'advanced-dw', bits: 16 },
  'advanced, equalized': { preset: 'advanced', equalize: true },
  'advanced-dw, equalized': { preset: 'advanced-dw', equalize: true },
  'advanced-dw, clip bounds kept': { preset: 'advanced-dw', keepClipBounds: true },
  'advanced-dw, 16-bit, clip bounds kept': { preset: 'advanced-dw', bits: 16, keepClipBounds: true },
};
const MODELS = {
  mobilenetv2: {
    model: 'mobilenetv2-12-fp32.onnx', shape: [1, 3, 224, 224], preprocess: 'imagenet', task: 'imagenet', metric: 'top1', label: 'top-1 %',
    images: join(A, 'images/imagenet-sample'), labels: join(A, 'labels/imagenet-wnids.txt'), calibrate: 100,
    configs: Object.keys(CONFIGS),
  },
  yolox: {
    model: 'yolox-nano.onnx', shape: [1, 3, 416, 416], preprocess: 'yolox', task: 'detection', metric: 'map50', label: 'mAP@0.5 %',
    images: join(COCO, 'images'), labels: join(COCO, 'detection-labels'), calibrate: 64,
    configs: ['simple', 'advanced', 'advanced-dw', 'advanced-dw, 16-bit', 'advanced, equalized', 'advanced-dw, equalized'],
  },
  deeplab: {
    model: 'deeplabv3-mobilenetv2-257-nhwc.onnx', shape: [1, 257, 257, 3], preprocess: 'deeplab', task: 'segmentation', metric: 'miou', label: 'mIoU %',
    images: join(COCO, 'images'), labels: join(COCO, 'segmentation-masks'), classMap: COCO_PANOPTIC_TO_VOC, calibrate: 64,
    configs: ['simple', 'advanced', 'advanced-dw', 'advanced-dw, 16-bit', 'advanced, equalized', 'advanced-dw, equalized'],
  },
};
/** Models scored by their float-vs-fixed figure only, with more images than the robustness table. */
const UNLABELLED = {
  ultraface: { calibrate: 64, evaluate: 64 },
  'ppocrv4-det': { calibrate: 8, evaluate: 16 },
  'ppocrv4-rec': { calibrate: 32, evaluate: 64 },
  'agllnet-256': { calibrate: 8, evaluate: 16 },
  'tbefn-180x320': { calibrate: 16, evaluate: 32 },
};
for (const [name, counts] of Object.entries(UNLABELLED)) {
  MODELS[name] = { ...SHARED[name], ...counts, model: SHARED[name].file, label: SHARED[name].figure, configs: ['simple', 'advanced', 'advanced-dw', 'advanced-dw, 16-bit', 'advanced, equalized', 'advanced-dw, equalized'] };
}

const args = process.argv.slice(2);
const write = args.includes('--write');
const noQdq = args.includes('--no-qdq');
const heldOut = args.includes('--held-out');
const valueOf = (flag) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const evalImages = valueOf('--eval-images') && Number(valueOf('--eval-images'));
if (args.includes('--mixed-precision')) {
  // The curve replaces each model's configurations.
  const factors = (valueOf('--factors') ?? '1,1.1,1.25,1.5,2').split(',').map(Number);
  const curve = factors.map((factor) => {
    const name = `advanced-dw, mixed precision ${factor}`;
    CONFIGS[name] = { preset: 'advanced-dw', mixedPrecision: { factor } };
    return name;
  });
  for (const m of Object.values(MODELS)) m.configs = curve;
}
const valueAt = new Set(args.flatMap((a, i) => (a === '--config' || a === '--factors' || a === '--eval-images' ? [i + 1] : [])));
const configAt = args.flatMap((a, i) => (a === '--config' ? [i + 1] : []));
const only = configAt.length ? configAt.map((i) => args[i]) : undefined;
const names = args.filter((a, i) => !a.startsWith('--') && !valueAt.has(i));
for (const c of only ?? []) {
  if (!CONFIGS[c]) {
    console.error(`unknown configuration "${c}" (configurations: ${Object.keys(CONFIGS).join(', ')})`);
    process.exit(2);
  }
}
const rows = [];
const f = (v) => (v === undefined ? '–' : v.toFixed(1));
const status = (text) => process.stderr.isTTY && process.stderr.write(`\r${text}\x1b[K`);

for (const name of names.length ? names : Object.keys(MODELS)) {
  const m = MODELS[name];
  if (!m) {
    console.error(`unknown model "${name}" (models: ${Object.keys(MODELS).join(', ')})`);
    process.exit(2);
  }
  const model = await loadModel(readFileSync(join(A, 'models', m.model)), { inputShape: m.shape });
  const run = await (m.task ? labelled(name, m, model) : unlabelled(name, m, model));
  for (const config of m.configs.filter((c) => !only || only.includes(c))) {
    status(`${name} ${config}: calibrating`);
    const r = { config, ...(await run(config)) };
    rows.push(r);
    status('');
    if (r.mixed) console.error(`${name} ${config}: cost, groups, SQNR of the outputs and their sources on the sensitivity images, sensitivity time: ${r.mixed}`);
    console.error(`${name} ${config}: float ${f(r.float)} fixed ${f(r.fixed)} qdq ${f(r.qdq)} / ${f(r.qdqDevice)} agreement ${f(r.agreement)} sqnr ${f(r.sqnr)} (${r.seconds.toFixed(1)} s)`);
  }
}

/** The QDQ export's output for x in onnxruntime-node. */
async function qdqRunner(cal, rounding, shape) {
  const session = await ort.InferenceSession.create(cal.toQdqOnnx({ rounding }), { logSeverityLevel: 3 });
  return {
    run: async (x) => {
      const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, shape) });
      return Object.fromEntries(session.outputNames.map((k) => [k, out[k].data]));
    },
    release: () => session.release(),
  };
}

/** A model with labels: the SDK's evaluation (metric, agreement, SQNR) on the whole dataset. */
async function labelled(name, m, model) {
  const spec = sizeSpec(presetSpec(m.preprocess), m.shape);
  const all = openDataset(m.images, evalImages ? { limit: evalImages } : {});
  const calibration = all.files.slice(0, m.calibrate);
  const dataset = heldOut ? { ...all, files: all.files.slice(m.calibrate) } : all;
  const evalOptions = (fixed) => ({
    task: m.task, dataset, spec, labels: m.labels, classMap: m.classMap, fixed: { run: fixed },
    onProgress: (d, t) => status(`${name}: evaluating ${d}/${t}`),
  });
  return async (config) => {
    const started = Date.now();
    const cal = await calibrateImages(model, calibration, spec, CONFIGS[config]);
    const seconds = (Date.now() - started) / 1000;
    const fixed = await evaluate(model, evalOptions((x) => cal.run(x)));
    const qdq = {};
    for (const rounding of noQdq ? [] : ['onnx', 'device']) {
      const session = await qdqRunner(cal, rounding, m.shape);
      qdq[rounding] = (await evaluate(model, evalOptions(session.run))).fixed[m.metric];
      await session.release();
    }
    const sqnr = Object.values(fixed.fixed.sqnr ?? {});
    const mp = cal.table.mixedPrecision;
    return {
      mixed: mp && `${mp.cost.toFixed(2)}, ${mp.chosen.length} groups, ${mp.outputSqnr.base.toFixed(1)} -> ${mp.outputSqnr.chosen.toFixed(1)} dB, ${(cal.timings.mixedPrecision / 1000).toFixed(0)} s`,
      model: `${m.model} (${m.label}, ${calibration.length} calibration / ${fixed.images} eval images)`,
      float: fixed.float[m.metric], fixed: fixed.fixed[m.metric], qdq: qdq.onnx, qdqDevice: qdq.device,
      agreement: fixed.agreement, sqnr: sqnr.length ? Math.min(...sqnr) : undefined, seconds,
    };
  };
}

/** A model without labels: its float-vs-fixed figure (in the agreement column) and output SQNR. */
async function unlabelled(name, m, model) {
  const { spec, calibration, inputs, floats, output } = await prepare(m, model);
  return async (config) => {
    const started = Date.now();
    const cal = await calibrateImages(model, calibration, spec, CONFIGS[config]);
    const seconds = (Date.now() - started) / 1000;
    const score = async (run) => {
      const s = scorer(m);
      for (const [i, x] of inputs.entries()) {
        status(`${name}: evaluating ${i + 1}/${inputs.length}`);
        s.add(floats[i][output], (await run(x))[output]);
      }
      return s.result();
    };
    const fixed = await score((x) => cal.run(x));
    const qdq = {};
    for (const rounding of noQdq ? [] : ['onnx', 'device']) {
      const session = await qdqRunner(cal, rounding, m.shape);
      qdq[rounding] = (await score(session.run)).figure;
      await session.release();
    }
    return {
      model: `${m.model} (${m.label}, ${calibration.length} calibration / ${inputs.length} eval images)`,
      agreement: fixed.figure, qdq: qdq.onnx, qdqDevice: qdq.device, sqnr: fixed.sqnr, seconds,
    };
  };
}

const mixed = rows.some((r) => r.mixed);
const table = mixed ? [
  '| model (metric) | configuration | float | p2calib fixed point | agreement with float % | output SQNR dB | cost (x all-8-bit), 16-bit groups, SQNR of the outputs and their sources before bias calibration, sensitivity pass | calibration s |',
  '|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.model} | ${r.config} | ${f(r.float)} | ${f(r.fixed)} | ${f(r.agreement)} | ${f(r.sqnr)} | ${r.mixed ?? '–'} | ${f(r.seconds)} |`),
].join('\n') : [
  '| model (metric) | preset | float | p2calib fixed point | agreement with float (top-1 or pixels %; unlabelled models: their figure) | output SQNR dB | QDQ in onnxruntime | QDQ, device rounding | calibration s |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.model} | ${r.config} | ${f(r.float)} | ${f(r.fixed)} | ${f(r.agreement)} | ${f(r.sqnr)} | ${f(r.qdq)} | ${f(r.qdqDevice)} | ${f(r.seconds)} |`),
].join('\n');
console.log(table);
if (write) {
  const readme = readFileSync('README.md', 'utf8');
  const begin = `<!-- accuracy${mixed ? '-mixed' : ''}:begin -->`, end = `<!-- accuracy${mixed ? '-mixed' : ''}:end -->`;
  if (!readme.includes(begin)) {
    console.error('README.md has no accuracy markers');
    process.exit(1);
  }
  const stamp = `Produced by \`npm run accuracy -- ${args.join(' ')}\` on ${new Date().toISOString().slice(0, 10)}.`;
  writeFileSync('README.md', readme.replace(new RegExp(`${begin}[\\s\\S]*${end}`), `${begin}\n${stamp}\n\n${table}\n${end}`));
}
