/**
 * YOLOX's anchor-free grid head: one output [1, anchors, 5 + classes], rows stride by stride, each
 * grid row-major: centre offsets, log sizes, objectness and class scores (sigmoids applied by the
 * exported head).
 */
import { fail } from '../errors.js';
import type { Box, DetectionHead } from './detection.js';

export interface YoloxOptions {
  /** Model input size in pixels. */
  width: number;
  height: number;
  strides?: number[];
  /** Keep candidates with obj*cls above this (default 0.001). */
  scoreThreshold?: number;
}

export const YOLOX_STRIDES = [8, 16, 32];

/** Rows a YOLOX head has for an input size: one per grid cell of every stride. */
export function yoloxRows(width: number, height: number, strides = YOLOX_STRIDES): number {
  return strides.reduce((n, s) => n + Math.floor(width / s) * Math.floor(height / s), 0);
}

/**
 * Decode one image's YOLOX output [anchors, 5 + classes]: xy = (p + grid) * stride,
 * wh = exp(p) * stride (centre and size, in input pixels), score = obj * cls. Each anchor gives its
 * best class.
 */
export function decodeYolox(out: ArrayLike<number>, rowLength: number, o: YoloxOptions): Box[] {
  const strides = o.strides ?? YOLOX_STRIDES;
  const threshold = o.scoreThreshold ?? 0.001;
  const classes = rowLength - 5;
  const rows = yoloxRows(o.width, o.height, strides);
  if (rows * rowLength !== out.length || classes < 1) {
    fail('BAD_INPUT', `the detection output has ${out.length} values; YOLOX grids (strides ${strides}) of a ${o.width}x${o.height} input need ${rows} rows of 5 + classes`);
  }
  const boxes: Box[] = [];
  let row = 0;
  for (const s of strides) {
    const gw = Math.floor(o.width / s), gh = Math.floor(o.height / s);
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

/** The head over a model output named `output` of shape [1, anchors, 5 + classes]. */
export function yoloxHead(output: { name: string; shape: number[] }, width: number, height: number, strides = YOLOX_STRIDES): DetectionHead {
  const rowLength = output.shape[output.shape.length - 1];
  return {
    kind: 'yolox',
    describe: `YOLOX grids on "${output.name}" (strides ${strides.join('/')}, ${rowLength - 5} classes)`,
    decode: (outs, scoreThreshold) => decodeYolox(outs[output.name], rowLength, { width, height, strides, scoreThreshold }),
  };
}
