import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { activationHistograms, calibrate, calibrateImageSet, loadModel, parseSpec, sizeSpec, tableJson, type RgbImage } from '../sdk/index.js';
import { preprocess, type SizedSpec } from '../sdk/data/preprocess.js';
import { Model } from '../sdk/model.js';
import type { WorkerInit } from '../sdk/quant/protocol.js';
import { CalibrationWorker, LocalWorker } from '../sdk/quant/worker.js';
import { sameTop1 } from '../sdk/metrics/classification.js';
import { histogramRef, minMaxRef } from '../sdk/quant/histogram.js';
import { rng, smallCnn } from './helpers.js';

const bytes = smallCnn();

/** Seeded RGB images of various sizes (what a decoder would return). */
const images: RgbImage[] = Array.from({ length: 5 }, (_, i) => {
  const r = rng(40 + i);
  const [width, height] = [20 + 3 * i, 18 + i];
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(r(0, 256))) };
});

test('activationHistograms: the WASM kernels count what the plain reference counts over every image, on one range', async () => {
  const model = await loadModel(bytes, { inputShape: [1, 3, 12, 12] });
  const samples = Array.from({ length: 4 }, (_, i) => Float32Array.from({ length: 432 }, rng(i).bind(null, -2, 2)));
  const names = ['x', 'c1', 'r1', 'sum', 'y'];
  const hists = await activationHistograms(model, samples, names, { bins: 64 });
  // Reference: every tensor kept readable, float values gathered per image.
  const { plan } = await model.floatPlan(1, { keep: names });
  const values = samples.map((s) => {
    plan.run({ x: s });
    return names.map((n) => plan.view(n).slice());
  });
  names.forEach((name, k) => {
    const [lo, hi] = values.map((v) => minMaxRef(v[k])).reduce((a, b) => [Math.min(a[0], b[0]), Math.max(a[1], b[1])]);
    const counts = new Uint32Array(64);
    for (const v of values) histogramRef(v[k], lo, hi, counts);
    assert.equal([hists[name].min, hists[name].max], [lo, hi], name);
    assert.equal(hists[name].counts, counts, name);
    assert.is(counts.reduce((a, b) => a + b, 0), values[0][k].length * samples.length);
  });
  try {
    await activationHistograms(model, samples, ['c2_nope']);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /"c2_nope" is not a tensor the float model computes/);
  }
});

test('calibrateImageSet: the calibration of the preprocessed images, their histograms and float vs fixed agreement', async () => {
  const job = { preprocess: parseSpec({ preset: 'imagenet', width: 12, height: 12, shortSide: 14 }), options: { preset: 'advanced' as const, batchSize: 2 } };
  const progress: string[] = [];
  const r = await calibrateImageSet(bytes, images, { ...job, inputShape: [1, 3, 12, 12] }, { decode: async (im) => im, onProgress: (p) => progress.push(`${p.stage}:${p.pass}`) });
  const model = await loadModel(bytes, { inputShape: [1, 3, 12, 12] });
  const spec = sizeSpec(job.preprocess, [1, 3, 12, 12]);
  const tensors = images.map((im) => preprocess(im, spec));
  // calibrateImageSet records what it knows of its images: the preprocessing and its own options.
  const cal = await calibrate(model, tensors, { ...job.options, source: { preprocessing: spec, options: { pixelInput: false, qdqRounding: 'onnx' } } });
  assert.equal(r.qdq, cal.toQdqOnnx());
  const device = await calibrateImageSet(bytes, images, { ...job, inputShape: [1, 3, 12, 12], qdqRounding: 'device', histogramBins: 0 }, { decode: async (im) => im });
  assert.equal(device.qdq, cal.toQdqOnnx({ rounding: 'device' }));
  assert.not.equal(device.qdq, r.qdq);
  assert.equal(r.calibrated, cal.toCalibratedOnnx());
  assert.is(r.json, tableJson(cal.table));
  assert.equal(Object.keys(r.histograms), Object.keys(cal.table.tensors));
  let same = 0;
  for (const x of tensors) if (sameTop1((await model.run(x)).y, (await cal.run(x)).y)) same++;
  assert.equal(r.agreement, { output: 'y', top1: (100 * same) / 5, images: 5 });
  assert.equal(r.inputShape, [1, 3, 12, 12]);
  const stages = [...new Set(progress)];
  assert.equal(stages, ['calibration:0', 'calibration:1', 'histograms:0', 'histograms:1', 'agreement:0']);
  assert.is(progress.length, 5 * images.length);
});

test('calibrateImageSet: three workers started from the WorkerInit give the bytes of one', async () => {
  const job = { inputShape: [1, 3, 12, 12], preprocess: parseSpec({ preset: 'imagenet', width: 12, height: 12, shortSide: 14 }), options: { batchSize: 2 }, histogramBins: 0 };
  const one = await calibrateImageSet(bytes, images, job, { decode: async (im) => im });
  let started = 0;
  // A pool in this thread built only from what a worker receives: the model's parts, the setup
  // and the loader's spec.
  const startWorkers = async (count: number, init: WorkerInit) => {
    started = count;
    return Promise.all(Array.from({ length: count }, async () =>
      new LocalWorker(await CalibrationWorker.create(Model.fromParts(init.model), init.setup), (im: RgbImage) => preprocess(im, init.loader as SizedSpec), init.setup.cacheBytes)));
  };
  const three = await calibrateImageSet(bytes, images, { ...job, workers: 3 }, { decode: async (im) => im, startWorkers });
  assert.is(started, 3);
  assert.is(three.json, one.json);
  assert.equal(three.qdq, one.qdq);
  try {
    await calibrateImageSet(bytes, images, { ...job, workers: 2 }, { decode: async (im) => im });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /more than one worker needs a platform/);
  }
});

test('mixed precision: float tensors kept between candidates give the bytes of the float model run again', async () => {
  const job = { inputShape: [1, 3, 12, 12], preprocess: parseSpec({ preset: 'imagenet', width: 12, height: 12, shortSide: 14 }), options: { mixedPrecision: { factor: 1.5 } }, histogramBins: 0, agreement: false };
  let keyed = 0;
  const startWith = (keepBytes: number) => async (count: number, init: WorkerInit) =>
    Promise.all(Array.from({ length: count }, async () => {
      const worker = await CalibrationWorker.create(Model.fromParts(init.model), { ...init.setup, keepBytes });
      const compare = worker.compare.bind(worker);
      worker.compare = (req) => {
        if (req.keep !== undefined) keyed++;
        return compare(req);
      };
      return new LocalWorker(worker, (im: RgbImage) => preprocess(im, init.loader as SizedSpec), init.setup.cacheBytes);
    }));
  const kept = await calibrateImageSet(bytes, images, { ...job, workers: 2 }, { decode: async (im) => im, startWorkers: startWith(2 ** 30) });
  assert.ok(keyed > 2 * images.length, `${keyed} keyed comparisons`);
  const rerun = await calibrateImageSet(bytes, images, { ...job, workers: 2 }, { decode: async (im) => im, startWorkers: startWith(0) });
  assert.ok(kept.table.mixedPrecision!.chosen.length > 0);
  assert.is(kept.json, rerun.json);
  assert.equal(kept.qdq, rerun.qdq);
});

test('calibrateImageSet: pixel input, no histograms, and one-line errors for bad input', async () => {
  const job = { inputShape: [1, 3, 12, 12], preprocess: parseSpec({ preset: 'imagenet', width: 12, height: 12, shortSide: 14 }), pixelInput: true, histogramBins: 0, agreement: false };
  const r = await calibrateImageSet(bytes, images.slice(0, 2), { ...job, options: { preset: 'simple' } }, { decode: async (im) => im });
  assert.is(r.table.input.pixels, true);
  assert.equal(r.table.tensors.x.clip, [0, 256]);
  assert.equal(r.histograms, {});
  assert.is(r.agreement, undefined);
  const bad = async (f: () => Promise<unknown>, pattern: RegExp) => {
    try {
      await f();
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, pattern);
    }
  };
  await bad(() => calibrateImageSet(bytes, [], job, { decode: async (im: RgbImage) => im }), /no calibration images/);
  await bad(() => calibrateImageSet(bytes, images, { ...job, inputShape: [1, 3, 16, 16] }, { decode: async (im) => im }), /declared \[1,3,12,12\]/);
  await bad(() => calibrateImageSet(bytes, images, { ...job, preprocess: parseSpec({ preset: 'yolox' }) }, { decode: async (im) => im }), /wants 12x12/);
  await bad(() => calibrateImageSet(new Uint8Array([1, 2, 3]), images, job, { decode: async (im) => im }), /ONNX|truncated|protobuf/i);
});

test.run();
