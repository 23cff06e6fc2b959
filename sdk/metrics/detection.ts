/**
 * Object detection, whatever the head: boxes, non-maximum suppression, mAP@0.5 with all-point
 * interpolated AP (the area under the precision envelope) averaged over the classes present in the
 * ground truth, and the agreement of one model's boxes with another's. The heads' decoders are
 * their own modules (yolox.ts, prior-box.ts; heads.ts picks one from a model's outputs).
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

/** A detection head's decoder: one image's outputs (by name) to boxes in input pixels, candidates
 *  scoring above `scoreThreshold`, before NMS. */
export interface DetectionHead {
  kind: string;
  /** What it decoded, for reports (e.g. "YOLOX grids, strides 8/16/32"). */
  describe: string;
  decode(outputs: Record<string, ArrayLike<number>>, scoreThreshold: number): Box[];
}

/**
 * Greedy matching of detections to reference boxes: detections by decreasing score (stable), each
 * takes the unmatched reference box of its class it overlaps most, when that IoU reaches
 * `threshold`. Returns, per detection in the given order, the index of its reference box or -1.
 */
export function matchBoxes(detections: readonly Box[], reference: readonly Box[], threshold: number): number[] {
  const match = new Array<number>(detections.length).fill(-1);
  const used = new Uint8Array(reference.length);
  const order = detections.map((_, i) => i).sort((a, b) => detections[b].score - detections[a].score || a - b);
  for (const d of order) {
    let best = -1, bestIou = threshold;
    reference.forEach((t, i) => {
      if (t.cls !== detections[d].cls || used[i]) return;
      const v = iou(detections[d], t);
      if (v >= bestIou) [best, bestIou] = [i, v];
    });
    if (best >= 0) used[best] = 1;
    match[d] = best;
  }
  return match;
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
    const match = matchBoxes(detections, truth, this.iouThreshold);
    const order = detections.map((_, i) => i).sort((a, b) => detections[b].score - detections[a].score || a - b);
    for (const i of order) {
      const d = detections[i];
      let list = this.dets.get(d.cls);
      if (!list) this.dets.set(d.cls, (list = []));
      list.push({ score: d.score, tp: match[i] >= 0, order: this.n++ });
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

/** How one model's boxes agree with another's (the fixed-point model's with the float model's):
 *  precision is the share of the fixed boxes that match a float box (same class, IoU at least
 *  `iou`), recall the share of float boxes matched; each is 100 when there is nothing to match. */
export interface BoxAgreementResult {
  precision: number;
  recall: number;
  /** Boxes of each model and matched pairs, over all images. */
  float: number;
  fixed: number;
  matched: number;
  /** Mean IoU of the matched pairs (1 when none). */
  meanIou: number;
}

export class BoxAgreement {
  private float = 0;
  private fixed = 0;
  private matched = 0;
  private iouSum = 0;

  constructor(private readonly iouThreshold = 0.5) {}

  /** One image: the reference (float) boxes and the compared (fixed) boxes, after NMS. */
  add(float: Box[], fixed: Box[]): void {
    const match = matchBoxes(fixed, float, this.iouThreshold);
    this.float += float.length;
    this.fixed += fixed.length;
    match.forEach((m, i) => {
      if (m < 0) return;
      this.matched++;
      this.iouSum += iou(fixed[i], float[m]);
    });
  }

  result(): BoxAgreementResult {
    const pct = (n: number, d: number) => (d ? (100 * n) / d : 100);
    return {
      precision: pct(this.matched, this.fixed), recall: pct(this.matched, this.float),
      float: this.float, fixed: this.fixed, matched: this.matched, meanIou: this.matched ? this.iouSum / this.matched : 1,
    };
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
