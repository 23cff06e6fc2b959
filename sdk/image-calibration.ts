/**
 * A whole calibration from encoded images, as the browser page runs it in its Web Worker: load the
 * model, decode and preprocess each image as it streams through (the portable pipeline of
 * data/preprocess.ts), calibrate (here, or across calibration workers that decode their images
 * themselves), then the activation histograms and the float vs fixed top-1 agreement for display.
 * Only decoding and starting workers are platform-specific, so Node (sharp) and browsers
 * (createImageBitmap) given the same pixels produce the same bytes, with any number of workers.
 */
import { runCalibration } from './calibration.js';
import { checkImageLayout, parseSpec, pixelAffine, pixelSpec, preprocess, sizeSpec, type PreprocessSpec, type SizedSpec } from './data/preprocess.js';
import type { RgbImage } from './data/resize.js';
import { fail } from './errors.js';
import { check, checkCallbacks, isRecord } from './guard.js';
import type { ImageIdentity } from './export/provenance.js';
import type { QdqRounding } from './export/qdq.js';
import { tableJson, type CalibrationTable } from './export/table.js';
import { activationHistograms, type TensorHistogram } from './histograms.js';
import { sameTop1 } from './metrics/classification.js';
import { loadModel } from './model.js';
import type { CalibrateOptions, CalibrationProgress } from './quant/calibrate.js';
import type { WorkerInit } from './quant/protocol.js';
import { CalibrationWorker, LocalWorker, type WorkerHandle } from './quant/worker.js';

export interface ImageCalibrationJob {
  /** The model's input shape where it declares dynamic dims. */
  inputShape?: number[];
  preprocess: PreprocessSpec;
  /** The exported models take raw 0..255 pixels and apply the spec's affine map themselves. */
  pixelInput?: boolean;
  options?: Omit<CalibrateOptions, 'onProgress'>;
  /** Bins of the activation histograms of every calibrated tensor (0: none; default 256). */
  histogramBins?: number;
  /** Measure float vs fixed top-1 agreement when the model has a classification-shaped output
   *  (default true). */
  agreement?: boolean;
  /** Calibration workers (default 1: in this thread); the result does not depend on it. */
  workers?: number;
  /** The QDQ model's rounding at ties (Calibration.toQdqOnnx; default 'onnx'). */
  qdqRounding?: QdqRounding;
  /** For calibration.json's provenance: each image's name and SHA-256 (in image order), the
   *  folder they were chosen from, the model file's name. */
  images?: ImageIdentity[];
  imageRoot?: string;
  modelFile?: string;
}

export interface JobProgress extends CalibrationProgress {
  stage: 'calibration' | 'histograms' | 'agreement';
}

export interface ImageCalibrationResult {
  table: CalibrationTable;
  /** calibration.json, model.qdq.onnx and model.calibrated.onnx as written to disk. */
  json: string;
  qdq: Uint8Array;
  calibrated: Uint8Array;
  spec: SizedSpec;
  inputShape: number[];
  histograms: Record<string, TensorHistogram>;
  /** Top-1 agreement (percent) of the fixed-point model with the float one on the images. */
  agreement?: { output: string; top1: number; images: number };
}

/** What differs between platforms: decoding an image, and starting calibration workers. */
export interface ImagePlatform<T> {
  /** Decode one image to 8-bit RGB. */
  decode: (image: T) => Promise<RgbImage>;
  /** Start `count` workers that load images with `loadImageTensor(image, init.loader)`: the
   *  platform's decoder, then the portable preprocessing with that spec. Needed for workers > 1. */
  startWorkers?: (count: number, init: WorkerInit) => Promise<WorkerHandle<T>[]>;
  onProgress?: (p: JobProgress) => void;
}

/** The output whose shape is [N, K] up to unit dims (K >= 2), if any: class scores. */
function classificationOutput(outputs: { name: string; shape: number[] }[]): string | undefined {
  return outputs.find((o) => {
    const dims = o.shape.slice(1);
    return dims.filter((d) => d > 1).length === 1 && dims.every((d) => d >= 1);
  })?.name;
}

export async function calibrateImageSet<T>(
  modelBytes: Uint8Array, images: readonly T[], job: ImageCalibrationJob, platform: ImagePlatform<T>,
): Promise<ImageCalibrationResult> {
  check(modelBytes instanceof Uint8Array, 'calibrateImageSet', 'the model must be the bytes of an ONNX file (a Uint8Array)');
  check(Array.isArray(images), 'calibrateImageSet', 'images must be an array');
  check(isRecord(job), 'calibrateImageSet', 'the job must be an object');
  check(isRecord(platform) && typeof platform.decode === 'function', 'calibrateImageSet', 'the platform must be an object with a decode function');
  checkCallbacks(platform, ['onProgress', 'startWorkers'], 'calibrateImageSet');
  if (!images.length) fail('BAD_INPUT', 'no calibration images were given');
  const workers = Math.min(job.workers ?? 1, images.length);
  if (!Number.isInteger(workers) || workers < 1) fail('BAD_OPTION', `workers must be a positive integer, got ${job.workers}`);
  const startWorkers = platform.startWorkers;
  if (workers > 1 && !startWorkers) fail('BAD_OPTION', 'more than one worker needs a platform that starts them');
  const source = await loadModel(modelBytes, { inputShape: job.inputShape });
  if (source.inputs.length !== 1) fail('BAD_OPTION', `calibrating from images needs a single-input model; this one has ${source.inputs.length}`);
  const unsized = parseSpec(job.preprocess);
  // The checks the CLI makes: the declared channels against the layout, the size against the shape.
  checkImageLayout(source.source.inputs[0].dims, unsized.layout);
  const spec = sizeSpec(unsized, source.inputs[0].shape);
  const model = job.pixelInput ? source.withPixelInput(pixelAffine(spec)) : source;
  const load = job.pixelInput ? pixelSpec(spec) : spec;
  const loader = async (image: T) => preprocess(await platform.decode(image), load);
  const samples = {
    async *[Symbol.asyncIterator]() {
      for (const image of images) yield await loader(image);
    },
  };
  const report = (stage: JobProgress['stage']) => (p: CalibrationProgress) => platform.onProgress?.({ ...p, total: images.length, stage });

  const cal = await runCalibration(model, {
    source: {
      preprocessing: spec, images: job.images, imageRoot: job.imageRoot, modelFile: job.modelFile,
      options: { pixelInput: !!job.pixelInput, qdqRounding: job.qdqRounding ?? 'onnx' },
    },
    items: () => images,
    count: images.length,
    start: async (setup, m) => workers > 1
      ? startWorkers!(workers, { model: m.parts(), setup, loader: load })
      : [new LocalWorker(await CalibrationWorker.create(m, setup), loader, setup.cacheBytes)],
  }, { ...job.options, onProgress: report('calibration') });
  const bins = job.histogramBins ?? 256;
  const histograms = bins ? await activationHistograms(cal.model, samples, Object.keys(cal.table.tensors), { bins, onProgress: report('histograms') }) : {};

  let agreement: ImageCalibrationResult['agreement'];
  const output = job.agreement === false ? undefined : classificationOutput(model.outputs);
  if (output) {
    const progress = report('agreement');
    let same = 0, done = 0;
    for await (const x of samples) {
      if (sameTop1((await model.run(x))[output], (await cal.run(x))[output])) same++;
      progress({ pass: 0, passes: 1, done: ++done });
    }
    agreement = { output, top1: (100 * same) / done, images: done };
  }
  return {
    table: cal.table, json: tableJson(cal.table), qdq: cal.toQdqOnnx({ rounding: job.qdqRounding }), calibrated: cal.toCalibratedOnnx(),
    spec, inputShape: source.inputs[0].shape, histograms, agreement,
  };
}
