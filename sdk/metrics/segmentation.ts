/**
 * Semantic segmentation: per-pixel class maps from model scores, the mapping of dataset mask
 * values to model classes, and mean IoU over a confusion matrix accumulated over all images.
 */
import { fail } from '../errors.js';

/** A label map: one class per pixel, row-major; IGNORE marks pixels left out of scoring. */
export interface LabelMap {
  width: number;
  height: number;
  data: Int32Array;
}

export const IGNORE = -1;

/** Per-pixel argmax of scores laid out [H,W,C] (NHWC) or [C,H,W] (NCHW), one image. */
export function argmaxClasses(scores: ArrayLike<number>, width: number, height: number, classes: number, layout: 'NHWC' | 'NCHW'): LabelMap {
  const n = width * height;
  if (scores.length !== n * classes) fail('BAD_INPUT', `segmentation output has ${scores.length} values, expected ${height}x${width}x${classes}`);
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    if (layout === 'NHWC') {
      for (let c = 1; c < classes; c++) if (scores[i * classes + c] > scores[i * classes + best]) best = c;
    } else {
      for (let c = 1; c < classes; c++) if (scores[c * n + i] > scores[best * n + i]) best = c;
    }
    data[i] = best;
  }
  return { width, height, data };
}

/** Nearest-neighbour resize of a label map, src = floor(x * in/out) (the convention the shared
 *  DeepLab baseline was scored with). */
export function resizeLabels(map: LabelMap, width: number, height: number): LabelMap {
  if (map.width === width && map.height === height) return map;
  const data = new Int32Array(width * height);
  const xs = Int32Array.from({ length: width }, (_, x) => Math.min(map.width - 1, Math.floor((x * map.width) / width)));
  for (let y = 0; y < height; y++) {
    const sy = Math.min(map.height - 1, Math.floor((y * map.height) / height));
    for (let x = 0; x < width; x++) data[y * width + x] = map.data[sy * map.width + xs[x]];
  }
  return { width, height, data };
}

/**
 * How dataset mask values become model classes: `classes` maps a mask value to a model class;
 * values listed in `ignore` are left out of scoring; any other value becomes `other` (a class,
 * or IGNORE).
 */
export interface ClassMap {
  classes: Record<number, number>;
  ignore?: number[];
  other: number;
}

/** COCO panoptic category ids -> PASCAL VOC classes (0 = background), unlabeled (0) ignored. */
export const COCO_PANOPTIC_TO_VOC: ClassMap = {
  classes: {
    5: 1, 2: 2, 16: 3, 9: 4, 44: 5, 6: 6, 3: 7, 17: 8, 62: 9, 21: 10,
    67: 11, 18: 12, 19: 13, 4: 14, 1: 15, 64: 16, 20: 17, 63: 18, 7: 19, 72: 20,
  },
  ignore: [0],
  other: 0,
};

export const CLASS_MAPS: Record<string, ClassMap> = { 'coco-panoptic-to-voc': COCO_PANOPTIC_TO_VOC };

/** Validate a class map given as JSON: {"classes": {"<mask value>": class}, "ignore": [...], "other": class | -1}. */
export function parseClassMap(obj: unknown, where = 'class map'): ClassMap {
  const o = obj as Record<string, unknown>;
  if (!o || typeof o !== 'object' || typeof o.classes !== 'object' || !o.classes) fail('BAD_OPTION', `${where}: expected {"classes": {"<mask value>": class, ...}, "ignore": [...], "other": class}`);
  const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  const classes: Record<number, number> = {};
  for (const [k, v] of Object.entries(o.classes as Record<string, unknown>)) {
    if (!/^\d+$/.test(k) || !isInt(v) || (v as number) < 0) fail('BAD_OPTION', `${where}: "${k}": ${JSON.stringify(v)} is not "<mask value>": <class index>`);
    classes[Number(k)] = v as number;
  }
  const ignore = o.ignore ?? [];
  if (!Array.isArray(ignore) || !ignore.every(isInt)) fail('BAD_OPTION', `${where}: "ignore" must be a list of mask values`);
  const other = o.other ?? IGNORE;
  if (!isInt(other) || (other as number) < IGNORE) fail('BAD_OPTION', `${where}: "other" must be a class index or -1 (ignore)`);
  return { classes, ignore: ignore as number[], other: other as number };
}

/** Apply a class map to raw mask values (or use them as classes when no map is given). */
export function mapMask(values: ArrayLike<number>, width: number, height: number, map?: ClassMap): LabelMap {
  const data = new Int32Array(width * height);
  if (values.length !== data.length) fail('BAD_INPUT', `mask has ${values.length} values for ${width}x${height}`);
  const lut = new Map<number, number>();
  if (map) {
    for (const [k, v] of Object.entries(map.classes)) lut.set(Number(k), v);
    for (const v of map.ignore ?? []) lut.set(v, IGNORE);
  }
  for (let i = 0; i < data.length; i++) data[i] = map ? lut.get(values[i]) ?? map.other : values[i];
  return { width, height, data };
}

/** Confusion matrix over all images; IoU per class = TP / (TP + FP + FN). */
export class MeanIoU {
  private readonly cm: Float64Array;

  constructor(readonly classes: number) {
    this.cm = new Float64Array(classes * classes);
  }

  /** One image: prediction and ground truth of the same size. Ground-truth pixels marked IGNORE
   *  or outside the class range are not scored. */
  add(pred: LabelMap, truth: LabelMap): void {
    if (pred.width !== truth.width || pred.height !== truth.height) fail('BAD_INPUT', `prediction ${pred.width}x${pred.height} vs mask ${truth.width}x${truth.height}`);
    const k = this.classes;
    for (let i = 0; i < truth.data.length; i++) {
      const t = truth.data[i], p = pred.data[i];
      if (t < 0 || t >= k || p < 0 || p >= k) continue;
      this.cm[t * k + p]++;
    }
  }

  /** Percent; the mean is over classes that occur in the ground truth or the predictions. */
  result(): { miou: number; perClass: (number | null)[] } {
    const k = this.classes;
    const perClass: (number | null)[] = [];
    let sum = 0, n = 0;
    for (let c = 0; c < k; c++) {
      let row = 0, col = 0;
      for (let j = 0; j < k; j++) {
        row += this.cm[c * k + j];
        col += this.cm[j * k + c];
      }
      const tp = this.cm[c * k + c];
      const union = row + col - tp;
      if (union === 0) {
        perClass.push(null);
        continue;
      }
      perClass.push((100 * tp) / union);
      sum += (100 * tp) / union;
      n++;
    }
    return { miou: n ? sum / n : 0, perClass };
  }
}
