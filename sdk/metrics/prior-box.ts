/**
 * Prior-box heads (SSD, UltraFace): two outputs, class scores [1, priors, classes] and boxes
 * [1, priors, 4]. The boxes are either already decoded corners (x1, y1, x2, y2) normalized to the
 * input size (UltraFace's export decodes them in the graph), or SSD offsets against priors laid on
 * each feature map: centre = prior centre + d * centerVariance * prior size, size =
 * prior size * exp(d * sizeVariance).
 *
 * Priors (normalized centre and size) follow SSD's PriorBox and UltraFace's generator: level by
 * level, cell by cell (rows, then columns), each cell's boxes in order: for each min size s, the
 * square s, then sqrt(s * max size) when the level has max sizes, then for each aspect ratio r the
 * pair s·√r × s/√r and s/√r × s·√r. A box of s pixels is s/W wide and s/H high. Cell (i, j) of a
 * level of stride t and a fw x fh feature map has its centre at ((i + 0.5) t / W, (j + 0.5) t / H)
 * (SSD's `step`), or at ((i + 0.5) / fw, (j + 0.5) / fh) (UltraFace's generator); the two differ
 * where the stride does not divide the input (240 / 32: 7.5 rows of 8).
 */
import { fail } from '../errors.js';
import type { Box, DetectionHead } from './detection.js';

export interface PriorSpec {
  /** Input pixels per feature-map cell, one per level. */
  strides: number[];
  /** Prior sizes in input pixels, per level. */
  minSizes: number[][];
  /** Per level, one per min size: adds the square prior sqrt(min * max). */
  maxSizes?: number[][];
  /** Per level: each ratio r > 0 adds two priors per min size (r and 1/r). */
  aspectRatios?: number[][];
  /** [width, height] of each level's feature map; default ceil(input size / stride). */
  featureMaps?: [number, number][];
  /** Default 0.1. */
  centerVariance?: number;
  /** Default 0.2. */
  sizeVariance?: number;
  /** Cell centres from the stride (default, SSD) or from the feature-map size (`cells`, UltraFace). */
  centers?: 'stride' | 'cells';
  /** Clip priors to [0, 1] (SSD's `clip`). */
  clip?: boolean;
}

/** What the score output holds: probabilities, or logits to go through softmax / sigmoid. */
export type BoxScores = 'probabilities' | 'softmax' | 'sigmoid';
export const BOX_SCORES: readonly BoxScores[] = ['probabilities', 'softmax', 'sigmoid'];

/** Built-in prior specs by name. */
export const PRIOR_PRESETS: Record<string, PriorSpec> = {
  // Linzaer's Ultra-Light-Fast-Generic-Face-Detector (RFB and slim, any input size).
  ultraface: { strides: [8, 16, 32, 64], minSizes: [[10, 16, 24], [32, 48], [64, 96], [128, 192, 256]], centers: 'cells', clip: true, centerVariance: 0.1, sizeVariance: 0.2 },
};

/** A prior spec from JSON (or a preset name), checked field by field. */
export function parsePriorSpec(input: unknown, where = 'prior spec'): PriorSpec {
  if (typeof input === 'string') {
    const preset = PRIOR_PRESETS[input];
    if (!preset) fail('BAD_OPTION', `${where}: no prior preset "${input}" (presets: ${Object.keys(PRIOR_PRESETS).join(', ')})`);
    return preset;
  }
  if (!input || typeof input !== 'object' || Array.isArray(input)) fail('BAD_OPTION', `${where}: expected an object with strides and minSizes`);
  const o = input as Record<string, unknown>;
  const known = ['strides', 'minSizes', 'maxSizes', 'aspectRatios', 'featureMaps', 'centers', 'centerVariance', 'sizeVariance', 'clip'];
  const extra = Object.keys(o).filter((k) => !known.includes(k));
  if (extra.length) fail('BAD_OPTION', `${where}: unknown field ${extra.map((k) => `"${k}"`).join(', ')} (fields: ${known.join(', ')})`);
  const positive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;
  const list = (k: string, v: unknown): number[] => {
    if (!Array.isArray(v) || !v.length || !v.every(positive)) fail('BAD_OPTION', `${where}: ${k} must be a non-empty list of positive numbers`);
    return v as number[];
  };
  const strides = list('strides', o.strides);
  const perLevel = (k: string): number[][] | undefined => {
    if (o[k] === undefined) return undefined;
    const v = o[k];
    if (!Array.isArray(v) || v.length !== strides.length) fail('BAD_OPTION', `${where}: ${k} needs one list per level (${strides.length} strides)`);
    return v.map((l, i) => list(`${k}[${i}]`, l));
  };
  const minSizes = perLevel('minSizes');
  if (!minSizes) fail('BAD_OPTION', `${where}: minSizes is required (prior sizes in input pixels, one list per level)`);
  const maxSizes = perLevel('maxSizes');
  maxSizes?.forEach((m, i) => {
    if (m.length !== minSizes[i].length) fail('BAD_OPTION', `${where}: maxSizes[${i}] needs one value per min size (${minSizes[i].length})`);
  });
  const featureMaps = perLevel('featureMaps');
  featureMaps?.forEach((f, i) => {
    if (f.length !== 2 || !f.every(Number.isInteger)) fail('BAD_OPTION', `${where}: featureMaps[${i}] must be [width, height] in cells`);
  });
  const variance = (k: string) => {
    if (o[k] !== undefined && !positive(o[k])) fail('BAD_OPTION', `${where}: ${k} must be a positive number`);
    return o[k] as number | undefined;
  };
  if (o.clip !== undefined && typeof o.clip !== 'boolean') fail('BAD_OPTION', `${where}: clip must be true or false`);
  if (o.centers !== undefined && o.centers !== 'stride' && o.centers !== 'cells') fail('BAD_OPTION', `${where}: centers must be "stride" or "cells"`);
  const spec: PriorSpec = {
    strides, minSizes, maxSizes, aspectRatios: perLevel('aspectRatios'), featureMaps: featureMaps as [number, number][] | undefined,
    centers: o.centers as PriorSpec['centers'], centerVariance: variance('centerVariance'), sizeVariance: variance('sizeVariance'), clip: o.clip as boolean | undefined,
  };
  return Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) as unknown as PriorSpec;
}

/** The priors of an input size, 4 values each (centre x, centre y, width, height), normalized. */
export function priorBoxes(spec: PriorSpec, width: number, height: number): Float64Array {
  const out: number[] = [];
  spec.strides.forEach((t, level) => {
    const [fw, fh] = spec.featureMaps?.[level] ?? [Math.ceil(width / t), Math.ceil(height / t)];
    const sizes: [number, number][] = [];
    spec.minSizes[level].forEach((s, k) => {
      sizes.push([s, s]);
      const max = spec.maxSizes?.[level][k];
      if (max !== undefined) sizes.push([Math.sqrt(s * max), Math.sqrt(s * max)]);
      for (const r of spec.aspectRatios?.[level] ?? []) sizes.push([s * Math.sqrt(r), s / Math.sqrt(r)], [s / Math.sqrt(r), s * Math.sqrt(r)]);
    });
    const clip = (v: number) => (spec.clip ? Math.min(1, Math.max(0, v)) : v);
    const [cw, ch] = spec.centers === 'cells' ? [1 / fw, 1 / fh] : [t / width, t / height];
    for (let j = 0; j < fh; j++) {
      for (let i = 0; i < fw; i++) {
        for (const [w, h] of sizes) out.push(clip((i + 0.5) * cw), clip((j + 0.5) * ch), clip(w / width), clip(h / height));
      }
    }
  });
  return Float64Array.from(out);
}

export interface PriorBoxOptions {
  /** Model input size in pixels. */
  width: number;
  height: number;
  /** The boxes are offsets against these priors; without, they are decoded corners (normalized). */
  priors?: PriorSpec;
  /** Default `probabilities` (used as they are). */
  scores?: BoxScores;
  /** Class 0 is background (default true): it gives no box, and class c is reported as c - 1. */
  background?: boolean;
}

function activate(row: Float64Array, how: BoxScores | undefined): void {
  if (how === 'sigmoid') for (let c = 0; c < row.length; c++) row[c] = 1 / (1 + Math.exp(-row[c]));
  if (how !== 'softmax') return;
  const max = Math.max(...row);
  let sum = 0;
  for (let c = 0; c < row.length; c++) sum += row[c] = Math.exp(row[c] - max);
  for (let c = 0; c < row.length; c++) row[c] /= sum;
}

/**
 * Decode one image: every (prior, class) whose score is above `scoreThreshold` is a candidate
 * (SSD's per-class candidates), in input pixels; the background class gives none.
 */
export function decodePriorBoxes(scores: ArrayLike<number>, boxes: ArrayLike<number>, o: PriorBoxOptions, scoreThreshold = 0.001): Box[] {
  return decodeWith(scores, boxes, o, scoreThreshold, o.priors && priorBoxes(o.priors, o.width, o.height));
}

function decodeWith(scores: ArrayLike<number>, boxes: ArrayLike<number>, o: PriorBoxOptions, scoreThreshold: number, priors: Float64Array | undefined): Box[] {
  const n = boxes.length / 4;
  const classes = scores.length / n;
  if (!Number.isInteger(n) || !Number.isInteger(classes) || classes < 1) {
    fail('BAD_INPUT', `prior-box outputs do not pair: ${scores.length} scores for ${boxes.length / 4} boxes`);
  }
  if (priors && priors.length !== boxes.length) {
    fail('BAD_INPUT', `the box output has ${n} boxes but the prior spec lays ${priors.length / 4} priors on a ${o.width}x${o.height} input`);
  }
  const first = o.background === false ? 0 : 1;
  if (first >= classes) fail('BAD_INPUT', 'the score output has one class, the background: there is nothing to detect (set background: false)');
  const cv = o.priors?.centerVariance ?? 0.1, sv = o.priors?.sizeVariance ?? 0.2;
  const row = new Float64Array(classes);
  const out: Box[] = [];
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) row[c] = scores[i * classes + c];
    activate(row, o.scores);
    let corners: [number, number, number, number] | undefined;
    for (let c = first; c < classes; c++) {
      if (!(row[c] > scoreThreshold)) continue;
      corners ??= priors ? offsetCorners(boxes, priors, i, cv, sv) : [boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]];
      const [x1, y1, x2, y2] = corners;
      out.push({ x1: x1 * o.width, y1: y1 * o.height, x2: x2 * o.width, y2: y2 * o.height, cls: c - first, score: row[c] });
    }
  }
  return out;
}

function offsetCorners(d: ArrayLike<number>, priors: Float64Array, i: number, cv: number, sv: number): [number, number, number, number] {
  const [pcx, pcy, pw, ph] = [priors[4 * i], priors[4 * i + 1], priors[4 * i + 2], priors[4 * i + 3]];
  const cx = pcx + d[4 * i] * cv * pw, cy = pcy + d[4 * i + 1] * cv * ph;
  const w = pw * Math.exp(d[4 * i + 2] * sv), h = ph * Math.exp(d[4 * i + 3] * sv);
  return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
}

/** The head over a score output and a box output of a model. */
export function priorBoxHead(scores: { name: string; shape: number[] }, boxes: { name: string; shape: number[] }, o: PriorBoxOptions): DetectionHead {
  const n = boxes.shape[1];
  const priors = o.priors && priorBoxes(o.priors, o.width, o.height);
  if (priors && priors.length / 4 !== n) {
    fail('BAD_OPTION', `the prior spec lays ${priors.length / 4} priors on a ${o.width}x${o.height} input; output "${boxes.name}" has ${n} boxes`);
  }
  const classes = scores.shape[scores.shape.length - 1] - (o.background === false ? 0 : 1);
  return {
    kind: 'prior-box',
    describe: `prior boxes: scores "${scores.name}" (${classes} class${classes > 1 ? 'es' : ''}${o.background === false ? '' : ' after the background'}), `
      + `boxes "${boxes.name}" (${priors ? `offsets against ${n} priors` : 'decoded corners'})`,
    decode: (outs, scoreThreshold) => decodeWith(outs[scores.name], outs[boxes.name], o, scoreThreshold, priors),
  };
}
