/**
 * Evaluation over an image dataset: the float model, and optionally a fixed-point one, image by
 * image through the same preprocessing, with the task's metric for each and their agreement and
 * per-output SQNR / cosine similarity.
 */
import { existsSync, statSync } from 'node:fs';
import { relative } from 'node:path';
import type { Calibration } from '../calibration.js';
import { fail } from '../errors.js';
import { check, checkCallbacks, checkModel, isRecord } from '../guard.js';
import { placement, type SizedSpec } from '../data/preprocess.js';
import type { Model } from '../model.js';
import { sameTop1, TopKAccuracy } from '../metrics/classification.js';
import { BoxAgreement, DetectionAP, nms, parseYoloLabels, type Box, type BoxAgreementResult } from '../metrics/detection.js';
import { ErrorStats } from '../metrics/error.js';
import { detectionHead, type HeadOptions } from '../metrics/heads.js';
import { argmaxClasses, mapMask, MeanIoU, resizeLabels, type ClassMap, type LabelMap } from '../metrics/segmentation.js';
import { classificationLabels, labelFile, readClassList, readText, skipImage, type Dataset, type SkipPolicy } from './datasets.js';
import { imageRunner, startEvalWorkers, type FixedRunner, type ImageOutputs } from './eval-images.js';
import { decodeMask } from './images.js';

export type { Runner, FixedRunner } from './eval-images.js';

export type Task = 'imagenet' | 'segmentation' | 'detection' | 'generic';
export const TASKS: readonly Task[] = ['imagenet', 'segmentation', 'detection', 'generic'];

export interface DetectionOptions extends HeadOptions {
  /** mAP: candidates kept above this score; default 0.001. */
  scoreThreshold?: number;
  /** Per-class NMS IoU; default 0.5. */
  nmsIou?: number;
  /** Float-vs-fixed box agreement: boxes scoring above this (default 0.5), after NMS, matched at
   *  IoU 0.5. */
  agreementScore?: number;
}

/** IoU at which a fixed-point box matches a float box (as mAP@0.5 matches ground truth). */
export const AGREEMENT_IOU = 0.5;

export interface EvaluateOptions extends SkipPolicy {
  task: Task;
  dataset: Dataset;
  spec: SizedSpec;
  /** imagenet: class list file (else class sub-folders); detection: folder of YOLO .txt files
   *  (without: only the float-vs-fixed box agreement); segmentation: folder of single-channel PNG
   *  masks. */
  labels?: string;
  /** segmentation: mask value -> model class. */
  classMap?: ClassMap;
  detection?: DetectionOptions;
  /** The fixed-point model to compare, as a calibration (worker threads rebuild it from its
   *  table)... */
  calibration?: Calibration;
  /** ... or as a runner of this thread (e.g. ONNX Runtime on a QDQ model). */
  fixed?: FixedRunner;
  /** Worker threads running the models, each with its own engines (default 1: this thread; at
   *  most one per image). Images are scored in their order whatever the number: the result does
   *  not depend on it. Workers run the model's own engine and need `calibration`, not `fixed`. */
  workers?: number;
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
  /** detection: the fixed model's boxes against the float model's. */
  boxes?: BoxAgreementResult & { scoreThreshold: number; iou: number };
  /** detection: the head decoded. */
  head?: string;
}

interface ImageInfo {
  file: string;
  width: number;
  height: number;
  index: number;
}

type Outputs = Record<string, Float32Array>;

/** A task: the ground truth of an image (loaded once), a metric per model fed image by image, and
 *  how float and fixed outputs agree. */
interface TaskSpec<T> {
  truth(info: ImageInfo): Promise<T> | T;
  metric(): { add(outputs: Outputs, truth: T, info: ImageInfo): void; result(): Metrics };
  agreement?(): { add(float: Outputs, fixed: Outputs): void; result(): Pick<EvalResult, 'agreement' | 'boxes'> };
  head?: string;
}

/** Agreement as the share of items alike (top-1 classes, pixel classes). */
function shareAlike(alike: (float: Outputs, fixed: Outputs) => [number, number]): TaskSpec<unknown>['agreement'] {
  return () => {
    let same = 0, compared = 0;
    return {
      add(f, q) {
        const [s, n] = alike(f, q);
        same += s;
        compared += n;
      },
      result: () => ({ agreement: (100 * same) / Math.max(1, compared) }),
    };
  };
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
    agreement: shareAlike((f, q) => [sameTop1(f[out.name], q[out.name]) ? 1 : 0, 1]),
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
    agreement: shareAlike((f, q) => {
      const [a, b] = [segmentationPrediction(f[out.name], out.shape), segmentationPrediction(q[out.name], out.shape)];
      let same = 0;
      for (let i = 0; i < a.data.length; i++) if (a.data[i] === b.data[i]) same++;
      return [same, a.data.length];
    }),
  };
}

/** Detection with any supported head: mAP@0.5 against YOLO labels when there are labels, and the
 *  fixed model's boxes against the float model's when there is a fixed model. */
function detection(model: Model, o: EvaluateOptions, labelDir: string | undefined): TaskSpec<Box[]> {
  const { width, height } = o.spec;
  const d = o.detection ?? {};
  const head = detectionHead(model.outputs, width, height, d);
  const boxes = (outs: Outputs, threshold: number) => nms(head.decode(outs, threshold), d.nmsIou ?? 0.5);
  const agreementScore = d.agreementScore ?? 0.5;
  return {
    head: head.describe,
    truth(info) {
      const f = labelDir && labelFile(o.dataset, info.file, labelDir, '.txt');
      // YOLO convention: an image without a label file has no objects.
      return f ? parseYoloLabels(readText(f, 'label file'), info.width, info.height, relative(process.cwd(), f)) : [];
    },
    metric() {
      if (!labelDir) return { add: () => undefined, result: () => ({}) };
      const ap = new DetectionAP(0.5);
      return {
        add(outs, truth, info) {
          const p = placement(info.width, info.height, o.spec);
          const found = boxes(outs, d.scoreThreshold ?? 0.001);
          ap.add(found.map((b) => ({ ...b, x1: (b.x1 - p.dx) / p.sx, x2: (b.x2 - p.dx) / p.sx, y1: (b.y1 - p.dy) / p.sy, y2: (b.y2 - p.dy) / p.sy })), truth);
        },
        result: () => ({ map50: ap.result().map }),
      };
    },
    agreement() {
      const a = new BoxAgreement(AGREEMENT_IOU);
      return {
        add: (f, q) => a.add(boxes(f, agreementScore), boxes(q, agreementScore)),
        result: () => ({ boxes: { ...a.result(), scoreThreshold: agreementScore, iou: AGREEMENT_IOU } }),
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
  if (o.fixed && o.calibration) fail('BAD_OPTION', 'give the fixed-point model as a calibration or as a runner, not both');
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
    case 'detection': {
      const compared = !!(o.fixed || o.calibration);
      if (o.labels === undefined && !compared) {
        fail('BAD_OPTION', 'detection needs --labels DIR, a folder of YOLO .txt files named like the images (for mAP), or a calibration (to compare the fixed-point boxes with the float ones)');
      }
      return run(model, o, files, detection(model, o, o.labels === undefined ? undefined : labelDir('YOLO .txt files')));
    }
    case 'generic':
      return run(model, o, files, { truth: () => undefined, metric: () => ({ add: () => undefined, result: () => ({}) }) });
    default:
      fail('BAD_OPTION', `unknown task "${o.task}" (tasks: ${TASKS.join(', ')})`);
  }
}

/** Each image's outputs in image order (or the error that made it unusable), from this thread or
 *  from worker threads, a few images per worker in flight. */
async function* imageOutputs(model: Model, o: EvaluateOptions, files: { file: string }[]): AsyncGenerator<ImageOutputs | Error> {
  const requested = o.workers ?? 1;
  if (!Number.isInteger(requested) || requested < 1) fail('BAD_OPTION', `workers must be a positive integer, got ${o.workers}`);
  const count = Math.min(requested, files.length);
  const cal = o.calibration;
  const fixed = o.fixed ?? (cal && { run: (x: Float32Array) => cal.run(x), pixels: !!cal.model.pixelInput });
  const settle = (p: Promise<ImageOutputs>) => p.catch((e: Error) => e);
  if (count <= 1) {
    const runImage = imageRunner(model, o.spec, fixed);
    for (const { file } of files) yield await settle(runImage(file));
    return;
  }
  if (o.fixed) fail('BAD_OPTION', 'worker threads cannot run a fixed-point runner function; pass the calibration, or use one worker');
  const workers = await startEvalWorkers(count, { model: model.parts(), spec: o.spec, table: cal?.table });
  try {
    const queue: Promise<ImageOutputs | Error>[] = [];
    let next = 0;
    const submit = () => {
      const w = workers.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
      queue.push(settle(w.run(files[next++].file)));
    };
    while (next < files.length && queue.length < 2 * count) submit();
    while (queue.length) {
      const r = await queue.shift()!;
      if (next < files.length) submit();
      yield r;
    }
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
}

async function run<T>(model: Model, o: EvaluateOptions, files: { file: string; index: number }[], task: TaskSpec<T>): Promise<EvalResult> {
  const floatM = task.metric();
  const compared = !!(o.fixed || o.calibration);
  const fixedM = compared ? task.metric() : undefined;
  const agreement = compared ? task.agreement?.() : undefined;
  const errors = new Map(model.outputs.map((v) => [v.name, new ErrorStats()]));
  let used = 0, k = 0;
  for await (const r of imageOutputs(model, o, files)) {
    const { file, index } = files[k++];
    let info: ImageInfo, truth: T;
    try {
      if (r instanceof Error) throw r;
      info = { file, index, width: r.width, height: r.height };
      truth = await task.truth(info);
    } catch (e) {
      skipImage(o, e);
      o.onProgress?.(k, files.length);
      continue;
    }
    used++;
    floatM.add(r.float, truth, info);
    if (fixedM && r.fixed) {
      fixedM.add(r.fixed, truth, info);
      for (const [name, e] of errors) e.add(r.float[name], r.fixed[name]);
      agreement?.add(r.float, r.fixed);
    }
    o.onProgress?.(k, files.length);
  }

  if (!used) fail('BAD_IMAGE', `none of the ${files.length} images could be used`);
  const result: EvalResult = { task: o.task, images: used, skipped: o.dataset.files.length - used, float: floatM.result(), ...(task.head ? { head: task.head } : {}) };
  if (fixedM) {
    const sqnr: Record<string, number> = {}, cosine: Record<string, number> = {};
    for (const [name, e] of errors) {
      sqnr[name] = e.sqnr();
      cosine[name] = e.cosine();
    }
    result.fixed = { ...fixedM.result(), sqnr, cosine };
    Object.assign(result, agreement?.result());
  }
  return result;
}
