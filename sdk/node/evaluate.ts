/**
 * Evaluation over an image dataset: the float model, and optionally a fixed-point one, image by
 * image through the same preprocessing, with the task's metric for each and their agreement and
 * per-output SQNR / cosine similarity.
 */
import { existsSync, statSync } from 'node:fs';
import { relative } from 'node:path';
import { fail } from '../errors.js';
import { check, checkCallbacks, checkModel, isRecord } from '../guard.js';
import { normalize, pixelSpec, placement, type GeometryPlan, type SizedSpec } from '../data/preprocess.js';
import type { RgbImage } from '../data/resize.js';
import type { Model } from '../model.js';
import { sameTop1, TopKAccuracy } from '../metrics/classification.js';
import { decodeYolox, DetectionAP, nms, parseYoloLabels, type Box } from '../metrics/detection.js';
import { ErrorStats } from '../metrics/error.js';
import { argmaxClasses, mapMask, MeanIoU, resizeLabels, type ClassMap, type LabelMap } from '../metrics/segmentation.js';
import { classificationLabels, labelFile, readClassList, readText, skipImage, type Dataset, type SkipPolicy } from './datasets.js';
import { decodeImage, decodeMask, imageGeometry } from './images.js';

export type Task = 'imagenet' | 'segmentation' | 'detection' | 'generic';
export const TASKS: readonly Task[] = ['imagenet', 'segmentation', 'detection', 'generic'];

/** Runs one preprocessed image (batch 1) and returns every output by name. */
export type Runner = (input: Float32Array) => Promise<Record<string, Float32Array>>;

export interface DetectionOptions {
  /** Candidates kept above this score (obj*cls); default 0.001. */
  scoreThreshold?: number;
  /** Per-class NMS IoU; default 0.5. */
  nmsIou?: number;
  strides?: number[];
}

export interface EvaluateOptions extends SkipPolicy {
  task: Task;
  dataset: Dataset;
  spec: SizedSpec;
  /** imagenet: class list file (else class sub-folders); detection: folder of YOLO .txt files;
   *  segmentation: folder of single-channel PNG masks. */
  labels?: string;
  /** segmentation: mask value -> model class. */
  classMap?: ClassMap;
  detection?: DetectionOptions;
  /** The fixed-point model, when there is one to compare; `pixels`: it takes raw 0..255 pixels
   *  (the preprocessing's affine map is its first layer). */
  fixed?: { run: Runner; pixels?: boolean };
  onProgress?: (done: number, total: number) => void;
}

export interface Metrics {
  top1?: number;
  top5?: number;
  miou?: number;
  map50?: number;
  /** Per output: float vs fixed SQNR (dB) and cosine similarity. */
  sqnr?: Record<string, number>;
  cosine?: Record<string, number>;
}

export interface EvalResult {
  task: Task;
  images: number;
  /** Images left out (segmentation: no mask; images that could not be decoded). */
  skipped: number;
  float: Metrics;
  fixed?: Metrics;
  /** imagenet: top-1 agreement; segmentation: pixels with the same class (percent). */
  agreement?: number;
}

interface ImageInfo {
  file: string;
  width: number;
  height: number;
  index: number;
}

/** A task: the ground truth of an image (loaded once), a metric per model fed image by image, and
 *  how float and fixed outputs agree (items alike, items compared). */
interface TaskSpec<T> {
  truth(info: ImageInfo): Promise<T> | T;
  metric(): { add(outputs: Record<string, Float32Array>, truth: T, info: ImageInfo): void; result(): Metrics };
  agree?(float: Record<string, Float32Array>, fixed: Record<string, Float32Array>): [number, number];
}

function firstOutput(model: Model): { name: string; shape: number[] } {
  return model.outputs[0];
}

function classification(model: Model, o: EvaluateOptions): TaskSpec<number> {
  const list = o.labels ? readClassList(o.labels) : undefined;
  const labels = classificationLabels(o.dataset, list);
  const out = firstOutput(model);
  const classes = out.shape.slice(1).reduce((a, b) => a * b, 1);
  const maxLabel = Math.max(...labels);
  // TF-style classifiers put a "background" class first: 1001 outputs for 1000 labels.
  const shift = list && classes === list.length + 1 ? 1 : 0;
  if (maxLabel + shift >= classes) fail('BAD_OPTION', `labels go up to ${maxLabel} but the model's output "${out.name}" has ${classes} classes`);
  return {
    truth: (info) => labels[info.index] + shift,
    metric() {
      const acc = new TopKAccuracy();
      return { add: (outs, label) => acc.add(outs[out.name], label), result: () => acc.result() };
    },
    agree: (f, q) => [sameTop1(f[out.name], q[out.name]) ? 1 : 0, 1],
  };
}

/** Output layout: [1,H,W,C] when C is smaller than H, [1,C,H,W] otherwise. */
function segmentationPrediction(scores: Float32Array, shape: number[]): LabelMap {
  const nhwc = shape[3] < shape[1];
  const [h, w, c] = nhwc ? [shape[1], shape[2], shape[3]] : [shape[2], shape[3], shape[1]];
  return argmaxClasses(scores, w, h, c, nhwc ? 'NHWC' : 'NCHW');
}

function segmentation(model: Model, o: EvaluateOptions, masks: Map<number, string>): TaskSpec<LabelMap> {
  const out = firstOutput(model);
  if (out.shape.length !== 4) fail('BAD_INPUT', `segmentation needs class scores of shape [1,H,W,C] or [1,C,H,W]; output "${out.name}" is [${out.shape}]`);
  const classes = Math.min(out.shape[1], out.shape[3]);
  return {
    truth: async (info) => {
      const m = await decodeMask(masks.get(info.index)!);
      return mapMask(m.data, m.width, m.height, o.classMap);
    },
    metric() {
      const miou = new MeanIoU(classes);
      return {
        add: (outs, gt) => miou.add(resizeLabels(segmentationPrediction(outs[out.name], out.shape), gt.width, gt.height), gt),
        result: () => ({ miou: miou.result().miou }),
      };
    },
    agree(f, q) {
      const [a, b] = [segmentationPrediction(f[out.name], out.shape), segmentationPrediction(q[out.name], out.shape)];
      let same = 0;
      for (let i = 0; i < a.data.length; i++) if (a.data[i] === b.data[i]) same++;
      return [same, a.data.length];
    },
  };
}

function detection(model: Model, o: EvaluateOptions, labelDir: string): TaskSpec<Box[]> {
  const out = firstOutput(model);
  const { width, height } = o.spec;
  const d = o.detection ?? {};
  return {
    truth(info) {
      const f = labelFile(o.dataset, info.file, labelDir, '.txt');
      // YOLO convention: an image without a label file has no objects.
      return f ? parseYoloLabels(readText(f, 'label file'), info.width, info.height, relative(process.cwd(), f)) : [];
    },
    metric() {
      const ap = new DetectionAP(0.5);
      return {
        add(outs, truth, info) {
          const rowLength = out.shape[out.shape.length - 1];
          const boxes = nms(decodeYolox(outs[out.name], rowLength, { width, height, strides: d.strides, scoreThreshold: d.scoreThreshold ?? 0.001 }), d.nmsIou ?? 0.5);
          const p = placement(info.width, info.height, o.spec);
          ap.add(boxes.map((b) => ({ ...b, x1: (b.x1 - p.dx) / p.sx, x2: (b.x2 - p.dx) / p.sx, y1: (b.y1 - p.dy) / p.sy, y2: (b.y2 - p.dy) / p.sy })), truth);
        },
        result: () => ({ map50: ap.result().map }),
      };
    },
  };
}

export async function evaluate(model: Model, o: EvaluateOptions): Promise<EvalResult> {
  checkModel(model, 'evaluate');
  check(isRecord(o) && isRecord(o.dataset) && Array.isArray(o.dataset.files) && isRecord(o.spec), 'evaluate', 'options need a task, a dataset (openDataset) and a sized spec');
  checkCallbacks(o, ['onProgress', 'onSkip'], 'evaluate');
  check(o.fixed === undefined || (isRecord(o.fixed) && typeof o.fixed.run === 'function'), 'evaluate', 'fixed must be {run(feeds)} (a Calibration)');
  if (model.inputs.length !== 1) fail('UNSUPPORTED', `eval feeds images to one input; the model has ${model.inputs.length}`);
  const files = o.dataset.files.map((file, index) => ({ file, index }));
  const labelDir = (what: string) => {
    if (!o.labels || !existsSync(o.labels) || !statSync(o.labels).isDirectory()) fail('BAD_OPTION', `${o.task} needs --labels DIR, a folder of ${what} named like the images`);
    return o.labels;
  };
  switch (o.task) {
    case 'imagenet':
      return run(model, o, files, classification(model, o));
    case 'segmentation': {
      const dir = labelDir('PNG masks');
      const masks = new Map<number, string>();
      for (const f of files) {
        const m = labelFile(o.dataset, f.file, dir, '.png');
        if (m) masks.set(f.index, m);
      }
      if (!masks.size) fail('BAD_OPTION', `no masks in ${dir} match the images' names`);
      return run(model, o, files.filter((f) => masks.has(f.index)), segmentation(model, o, masks));
    }
    case 'detection':
      return run(model, o, files, detection(model, o, labelDir('YOLO .txt files')));
    case 'generic':
      return run(model, o, files, { truth: () => undefined, metric: () => ({ add: () => undefined, result: () => ({}) }) });
    default:
      fail('BAD_OPTION', `unknown task "${o.task}" (tasks: ${TASKS.join(', ')})`);
  }
}

async function run<T>(model: Model, o: EvaluateOptions, files: { file: string; index: number }[], task: TaskSpec<T>): Promise<EvalResult> {
  const floatM = task.metric();
  const fixedM = o.fixed ? task.metric() : undefined;
  const errors = new Map(model.outputs.map((v) => [v.name, new ErrorStats()]));
  let same = 0, compared = 0;
  const input = new Float32Array(model.inputs[0].shape.slice(1).reduce((a, b) => a * b, 1));
  const pixels = o.fixed?.pixels ? new Float32Array(input.length) : undefined;
  const rawPixels = pixelSpec(o.spec);
  let used = 0;
  for (const [k, { file, index }] of files.entries()) {
    let image: RgbImage, plan: GeometryPlan, info: ImageInfo, truth: T;
    try {
      const name = relative(process.cwd(), file);
      const img = await decodeImage(file, name);
      ({ image, plan } = await imageGeometry(img, o.spec, 'sharp', name));
      info = { file, index, width: img.width, height: img.height };
      truth = await task.truth(info);
    } catch (e) {
      skipImage(o, e);
      continue;
    }
    used++;
    normalize(image, o.spec, input, 0, plan);
    const f = await model.run(input);
    floatM.add(f, truth, info);
    if (o.fixed && fixedM) {
      if (pixels) normalize(image, rawPixels, pixels, 0, plan);
      const q = await o.fixed.run(pixels ?? input);
      fixedM.add(q, truth, info);
      for (const [name, e] of errors) e.add(f[name], q[name]);
      if (task.agree) {
        const [s, n] = task.agree(f, q);
        same += s;
        compared += n;
      }
    }
    o.onProgress?.(k + 1, files.length);
  }

  if (!used) fail('BAD_IMAGE', `none of the ${files.length} images could be used`);
  const result: EvalResult = { task: o.task, images: used, skipped: o.dataset.files.length - used, float: floatM.result() };
  if (fixedM) {
    const sqnr: Record<string, number> = {}, cosine: Record<string, number> = {};
    for (const [name, e] of errors) {
      sqnr[name] = e.sqnr();
      cosine[name] = e.cosine();
    }
    result.fixed = { ...fixedM.result(), sqnr, cosine };
    if (task.agree) result.agreement = (100 * same) / Math.max(1, compared);
  }
  return result;
}
