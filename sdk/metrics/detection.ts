/**
 * Object detection: decoding YOLOX-style grid outputs, non-maximum suppression, and mAP@0.5 with
 * all-point interpolated AP (the area under the precision envelope) averaged over the classes
 * present in the ground truth.
 */
import { fail } from '../errors.js';

/** A box in pixels, corners (x1,y1)-(x2,y2), with its class and score. */
export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  cls: number;
  score: number;
}

export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const h = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return union > 0 ? inter / union : 0;
}

export interface YoloxOptions {
  /** Model input size in pixels. */
  width: number;
  height: number;
  strides?: number[];
  /** Keep candidates with obj*cls above this (default 0.001). */
  scoreThreshold?: number;
}

/**
 * Decode one image's YOLOX output [anchors, 5 + classes]: rows ordered stride by stride, each grid
 * row-major; xy = (p + grid) * stride, wh = exp(p) * stride (centre and size, in input pixels),
 * score = obj * cls (the exported head already applies the sigmoids). Each anchor gives its best
 * class.
 */
export function decodeYolox(out: ArrayLike<number>, rowLength: number, o: YoloxOptions): Box[] {
  const strides = o.strides ?? [8, 16, 32];
  const threshold = o.scoreThreshold ?? 0.001;
  const classes = rowLength - 5;
  const grids = strides.map((s) => [Math.floor(o.width / s), Math.floor(o.height / s)]);
  const rows = grids.reduce((n, [gw, gh]) => n + gw * gh, 0);
  if (rows * rowLength !== out.length || classes < 1) {
    fail('BAD_INPUT', `the detection output has ${out.length} values; YOLOX grids (strides ${strides}) of a ${o.width}x${o.height} input need ${rows} rows of 5 + classes`);
  }
  const boxes: Box[] = [];
  let row = 0;
  for (const [k, s] of strides.entries()) {
    const [gw, gh] = grids[k];
    for (let gy = 0; gy < gh; gy++) {
      for (let gx = 0; gx < gw; gx++, row++) {
        const p = row * rowLength;
        const obj = out[p + 4];
        if (obj <= threshold) continue;
        let best = 0;
        for (let c = 1; c < classes; c++) if (out[p + 5 + c] > out[p + 5 + best]) best = c;
        const score = obj * out[p + 5 + best];
        if (score <= threshold) continue;
        const cx = (out[p] + gx) * s, cy = (out[p + 1] + gy) * s;
        const w = Math.exp(out[p + 2]) * s, h = Math.exp(out[p + 3]) * s;
        boxes.push({ x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2, cls: best, score });
      }
    }
  }
  return boxes;
}

/** Per-class non-maximum suppression: highest score first, drop boxes overlapping a kept box of
 *  the same class by more than `threshold` IoU. Stable for equal scores. */
export function nms(boxes: Box[], threshold: number, maxBoxes = Infinity): Box[] {
  const order = boxes.map((b, i) => [b, i] as const).sort((a, b) => b[0].score - a[0].score || a[1] - b[1]).map((x) => x[0]);
  const kept: Box[] = [];
  for (const b of order) {
    if (kept.length >= maxBoxes) break;
    if (kept.every((k) => k.cls !== b.cls || iou(k, b) <= threshold)) kept.push(b);
  }
  return kept;
}

/** All-point interpolated AP from detections sorted by score (true/false positive flags). */
export function averagePrecision(tp: boolean[], positives: number): number {
  if (positives === 0) return 0;
  const precision: number[] = [], recall: number[] = [];
  let hits = 0;
  tp.forEach((t, i) => {
    if (t) hits++;
    precision.push(hits / (i + 1));
    recall.push(hits / positives);
  });
  // Precision envelope (monotone from the right), then the area under it over recall steps.
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i], precision[i + 1]);
  let ap = 0, prev = 0;
  for (let i = 0; i < recall.length; i++) {
    if (recall[i] > prev) {
      ap += (recall[i] - prev) * precision[i];
      prev = recall[i];
    }
  }
  return ap;
}

/** mAP at one IoU threshold, accumulated image by image. */
export class DetectionAP {
  private readonly dets = new Map<number, { score: number; tp: boolean; order: number }[]>();
  private readonly positives = new Map<number, number>();
  private n = 0;

  constructor(private readonly iouThreshold = 0.5) {}

  /** One image: its detections and ground-truth boxes, in the same coordinates. Each ground
   *  truth matches at most one detection (the highest-scoring one overlapping it enough). */
  add(detections: Box[], truth: Box[]): void {
    for (const t of truth) this.positives.set(t.cls, (this.positives.get(t.cls) ?? 0) + 1);
    const used = new Set<number>();
    const sorted = [...detections].sort((a, b) => b.score - a.score);
    for (const d of sorted) {
      let best = -1, bestIou = this.iouThreshold;
      truth.forEach((t, i) => {
        if (t.cls !== d.cls || used.has(i)) return;
        const v = iou(d, t);
        if (v >= bestIou) [best, bestIou] = [i, v];
      });
      if (best >= 0) used.add(best);
      let list = this.dets.get(d.cls);
      if (!list) this.dets.set(d.cls, (list = []));
      list.push({ score: d.score, tp: best >= 0, order: this.n++ });
    }
  }

  /** Per-class AP and their mean (percent), over classes with at least one ground-truth box. */
  result(): { map: number; perClass: Record<number, number> } {
    const perClass: Record<number, number> = {};
    const classes = [...this.positives.keys()].sort((a, b) => a - b);
    for (const c of classes) {
      const list = [...(this.dets.get(c) ?? [])].sort((a, b) => b.score - a.score || a.order - b.order);
      perClass[c] = 100 * averagePrecision(list.map((d) => d.tp), this.positives.get(c)!);
    }
    const map = classes.length ? classes.reduce((s, c) => s + perClass[c], 0) / classes.length : 0;
    return { map, perClass };
  }
}

/** YOLO label file: one "class cx cy w h" line per box, normalized to the image size. */
export function parseYoloLabels(text: string, width: number, height: number, where = 'label file'): Box[] {
  const boxes: Box[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const f = line.trim().split(/\s+/).filter(Boolean).map(Number);
    if (!f.length) return;
    if (f.length < 5 || f.some((v) => !Number.isFinite(v)) || !Number.isInteger(f[0]) || f[0] < 0) {
      fail('BAD_INPUT', `${where}:${i + 1}: expected "class cx cy w h" (YOLO format)`);
    }
    const [cls, cx, cy, w, h] = f;
    boxes.push({ x1: (cx - w / 2) * width, y1: (cy - h / 2) * height, x2: (cx + w / 2) * width, y2: (cy + h / 2) * height, cls, score: 1 });
  });
  return boxes;
}
