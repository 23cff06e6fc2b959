import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { presetSpec, sizeSpec } from '../sdk/data/preprocess.js';
import { loadModel, type Model } from '../sdk/model.js';
import { COCO_PANOPTIC_TO_VOC } from '../sdk/metrics/segmentation.js';
import { readCalibration } from '../sdk/node/calibration-files.js';
import { openDataset } from '../sdk/node/datasets.js';
import { evaluate, type EvaluateOptions } from '../sdk/node/evaluate.js';
import { ASSETS, MODELS, ROOT, assetTest, buildModel, floats, node } from './helpers.js';

const CLI = join(ROOT, 'dist/cli/main.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'p2calib-eval-'));

// A model whose class scores are the mean of each input channel: solid red/green/blue images are
// classes 0/1/2.
const tiny = join(dir, 'means.onnx');
writeFileSync(tiny, buildModel({
  inputs: [{ name: 'x', dims: ['N', 3, 8, 8] }],
  outputs: [{ name: 'scores' }],
  nodes: [node('GlobalAveragePool', ['x'], ['g']), node('Flatten', ['g'], ['scores'])],
}));
const solid = (rgb: number[]) => sharp({ create: { width: 20, height: 12, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
const images = join(dir, 'images');
for (const [cls, files] of [['red', [[250, 0, 0], [200, 10, 10]]], ['green', [[0, 240, 0]]], ['blue', [[0, 0, 255], [255, 0, 0]]]] as const) {
  mkdirSync(join(images, cls), { recursive: true });
  for (const [i, rgb] of files.entries()) writeFileSync(join(images, cls, `${i}.png`), await solid([...rgb]));
}
writeFileSync(join(dir, 'classes.txt'), 'red\ngreen\nblue\n');
const FLAGS = ['--preprocess', 'imagenet', '--resize', 'fill', '--size', '8x8', '--mean', '0', '--std', '1'];

test('eval --help explains every option with examples; every command has --help', () => {
  const r = cli('eval', '--help');
  assert.is(r.status, 0);
  for (const s of ['--images', '--task', '--labels', '--calibration', '--limit', '--preprocess', '--json', 'Examples:']) assert.ok(r.stdout.includes(s), s);
  assert.is(cli('inspect', '--help').status, 0);
  assert.match(cli('--help').stdout, /eval/);
});

test('eval on class sub-folders with a class list: top-1 by hand (4 of 5 right) and the JSON shape', () => {
  const r = cli('eval', tiny, '--task', 'imagenet', '--images', images, '--labels', join(dir, 'classes.txt'), ...FLAGS, '--json');
  assert.is(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(Object.keys(j), ['images', 'float']);
  assert.is(j.images, 5);
  assert.is(j.float.top1, 80); // the red image filed under "blue" is wrong
  assert.is(j.float.top5, 100);
  // Sorted sub-folders (blue, green, red) without a list: the classes are numbered differently.
  const noList = JSON.parse(cli('eval', tiny, '--task', 'imagenet', '--images', images, ...FLAGS, '--json').stdout);
  // blue=0 green=1 red=2: right are the green image and the red one filed under blue.
  assert.is(noList.float.top1, 40);
  const text = cli('eval', tiny, '--task', 'imagenet', '--images', images, '--labels', join(dir, 'classes.txt'), ...FLAGS, '--limit', '2');
  assert.match(text.stdout, /^2 images, task imagenet\nfloat top-1 [\d.]+ %\nfloat top-5 100\.0 %\n$/);
});

test('a classifier with a background class first (one output more than the class list) is scored on the shifted classes', () => {
  const withBackground = join(dir, 'background.onnx');
  writeFileSync(withBackground, buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }],
    outputs: [{ name: 'scores' }],
    nodes: [node('GlobalAveragePool', ['x'], ['g']), node('Flatten', ['g'], ['f']), node('Concat', ['bg', 'f'], ['scores'], { axis: 1 })],
    initializers: { bg: floats([1, 1], [-5]) },
  }));
  const r = cli('eval', withBackground, '--task', 'imagenet', '--images', images, '--labels', join(dir, 'classes.txt'), ...FLAGS, '--json');
  assert.is(r.status, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).float.top1, 80);
});

test('user errors: one line, exit 2; the message names the problem', () => {
  const cases: [string[], RegExp][] = [
    [['eval', tiny, '--images', images], /--task is required/],
    [['eval', tiny, '--task', 'imagenet'], /--images is required/],
    [['eval', tiny, '--task', 'speech', '--images', images], /--task "speech" is not one of/],
    [['eval', tiny, '--task', 'imagenet', '--images', join(dir, 'nope')], /images not found/],
    [['eval', tiny, '--task', 'detection', '--images', images, ...FLAGS], /detection needs --labels DIR/],
    [['eval', tiny, '--task', 'generic', '--images', images], /--preprocess is required/],
    [['eval', tiny, '--task', 'imagenet', '--images', images, '--preprocess', 'nope.json'], /neither a preset/],
    [['eval', tiny, '--task', 'imagenet', '--images', images, ...FLAGS, '--scale', 'abc'], /--scale: "abc" is not a number/],
    [['eval', tiny, '--task', 'imagenet', '--images', images, '--bogus'], /unknown option '--bogus'/],
    [['eval', tiny, '--task', 'imagenet', '--images', images, ...FLAGS, '--limit', '0'], /--limit must be an integer >= 1/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli(...args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.is(r.stdout, '');
  }
  // With --strict, an unreadable image stops the run with its name (without, it is skipped).
  const bad = join(dir, 'bad');
  mkdirSync(join(bad, 'red'), { recursive: true });
  writeFileSync(join(bad, 'red', 'junk.jpg'), 'not an image');
  const r = cli('eval', tiny, '--task', 'generic', '--images', bad, ...FLAGS, '--strict');
  assert.is(r.status, 2);
  assert.match(r.stderr, /^p2calib: error: cannot decode image .*junk\.jpg/);
});

test('generic task: runs every image, reports no float metric', () => {
  const r = cli('eval', tiny, '--task', 'generic', '--images', images, ...FLAGS, '--json');
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { images: 5, float: {} });
});

test('eval --workers: the same report and the same warnings, in the same order, for 1, 2 and 3 workers', async () => {
  const cal = join(dir, 'tiny-cal');
  const c = cli('calibrate', tiny, '--images', images, '--out', cal, ...FLAGS, '--workers', '1');
  assert.is(c.status, 0, c.stderr);
  const mixed = join(dir, 'mixed');
  mkdirSync(mixed, { recursive: true });
  for (const cls of ['red', 'green', 'blue']) {
    mkdirSync(join(mixed, cls), { recursive: true });
    for (const f of ['0.png', '1.png']) {
      try {
        writeFileSync(join(mixed, cls, f), readFileSync(join(images, cls, f)));
      } catch {
        // green has one image
      }
    }
  }
  writeFileSync(join(mixed, 'green', 'broken.png'), 'not a png');
  writeFileSync(join(mixed, 'red', 'empty.jpg'), '');
  // The CLI caps --workers at the cores (saying so); the SDK does not: 3 threads run here whatever
  // the machine.
  const runs = [1, 2, 3].map((n) => cli('eval', tiny, '--task', 'imagenet', '--images', mixed, '--labels', join(dir, 'classes.txt'), '--calibration', cal, '--workers', String(n), '--json'));
  const warnings = (r: { stderr: string }) => r.stderr.replace(/^p2calib: warning: --workers \d+ is more than the \d+ cores; using \d+\n/, '');
  for (const r of runs) {
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, runs[0].stdout);
    assert.is(warnings(r), warnings(runs[0]));
  }
  const j = JSON.parse(runs[0].stdout);
  assert.is(j.images, 5);
  assert.is(j.float.top1, 80);
  assert.match(runs[0].stderr, /broken\.png.*\(skipped\)\n.*empty\.jpg.*\(skipped\)/s);
  const model = await loadModel(readFileSync(tiny), { inputShape: [1, 3, 8, 8] });
  const calibration = readCalibration(model, cal);
  const sdkRuns = await Promise.all([1, 3].map(async (workers) => {
    const skipped: string[] = [];
    const r = await evaluate(model, {
      task: 'imagenet', dataset: openDataset(mixed), spec: sizeSpec(calibration.table.provenance!.preprocessing!, [1, 3, 8, 8]),
      labels: join(dir, 'classes.txt'), calibration, workers, onSkip: (m) => skipped.push(m),
    });
    return JSON.stringify([r, skipped]);
  }));
  assert.is(sdkRuns[1], sdkRuns[0]);
  assert.match(sdkRuns[0], /"agreement":100/);
  assert.match(cli('eval', tiny, '--task', 'imagenet', '--images', images, ...FLAGS, '--workers', '0').stderr, /--workers must be an integer >= 1/);
});

test('SDK evaluate: a fixed-point runner function stays in this thread; worker threads need the calibration', async () => {
  const model = await loadModel(readFileSync(tiny), { inputShape: [1, 3, 8, 8] });
  const spec = sizeSpec({ ...presetSpec('imagenet'), width: 8, height: 8, resize: 'fill', mean: [0, 0, 0], std: [1, 1, 1] }, [1, 3, 8, 8]);
  const o = { task: 'imagenet' as const, dataset: openDataset(images), spec, fixed: { run: (x: Float32Array) => model.run(x) } };
  assert.is((await evaluate(model, o)).agreement, 100);
  try {
    await evaluate(model, { ...o, workers: 2 });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /worker threads cannot run a fixed-point runner function/);
  }
});

/** The same evaluation with ONNX Runtime in place of p2calib's float engine. */
async function ortModel(model: Model, file: string): Promise<Model> {
  const session = await ort.InferenceSession.create(readFileSync(file), { logSeverityLevel: 3 });
  const shape = model.inputs[0].shape;
  const run = async (x: Float32Array) => {
    const r = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, shape) });
    return Object.fromEntries(session.outputNames.map((n) => [n, r[n].data as Float32Array]));
  };
  return Object.assign(Object.create(model), { run });
}

async function bothEngines(file: string, shape: number[], o: Omit<EvaluateOptions, 'spec'> & { preset: string }) {
  const model = await loadModel(readFileSync(join(MODELS, file)), { inputShape: shape });
  const opts = { ...o, spec: sizeSpec(presetSpec(o.preset), shape) };
  return [await evaluate(model, opts), await evaluate(await ortModel(model, join(MODELS, file)), opts)];
}

assetTest(test, 'real subsets: p2calib\'s float engine scores like ONNX Runtime (detection, segmentation)', async () => {
  const coco = join(ASSETS, 'images/coco128-val');
  const [c, d] = await bothEngines('yolox-nano.onnx', [1, 3, 416, 416], {
    task: 'detection', preset: 'yolox', dataset: openDataset(join(coco, 'images'), { limit: 2 }), labels: join(coco, 'detection-labels'),
  });
  assert.ok(c.float.map50! > 10, `mAP ${c.float.map50}`);
  assert.ok(Math.abs(c.float.map50! - d.float.map50!) < 0.5, `${c.float.map50} vs ${d.float.map50}`);
  const list = join(dir, 'seg.txt');
  writeFileSync(list, `${join(coco, 'images/000000000139.jpg')}\n${join(coco, 'images/000000000632.jpg')}\n`);
  const [e, f] = await bothEngines('deeplabv3-mobilenetv2-257-nhwc.onnx', [1, 257, 257, 3], {
    task: 'segmentation', preset: 'deeplab', dataset: openDataset(list), labels: join(coco, 'segmentation-masks'), classMap: COCO_PANOPTIC_TO_VOC,
  });
  assert.is(e.images, 2);
  assert.ok(Math.abs(e.float.miou! - f.float.miou!) < 0.1, `${e.float.miou} vs ${f.float.miou}`);
});

assetTest(test, 'p2calib eval on the shared MobileNetV2 and its 500 images reproduces ONNX Runtime: 83.8 % top-1, 97.0 % top-5', () => {
  const r = cli('eval', join(MODELS, 'mobilenetv2-12-fp32.onnx'), '--task', 'imagenet', '--images', join(ASSETS, 'images/imagenet-sample'),
    '--labels', join(ASSETS, 'labels/imagenet-wnids.txt'), '--json');
  assert.is(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.is(j.images, 500);
  assert.is(j.float.top1.toFixed(1), '83.8');
  assert.is(j.float.top5.toFixed(1), '97.0');
});

test.after(() => rmSync(dir, { recursive: true }));
test.run();
