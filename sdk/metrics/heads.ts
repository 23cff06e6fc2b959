/** Which detection head a model has, from its output shapes (or as told), and its decoder. */
import { fail } from '../errors.js';
import type { DetectionHead } from './detection.js';
import { priorBoxHead, type BoxScores, type PriorSpec } from './prior-box.js';
import { YOLOX_STRIDES, yoloxHead, yoloxRows } from './yolox.js';

export type HeadKind = 'yolox' | 'prior-box';
export const HEAD_KINDS: readonly HeadKind[] = ['yolox', 'prior-box'];

export interface HeadOptions {
  /** Default: prior-box when two outputs pair as [1,N,classes] and [1,N,4], else yolox. */
  head?: HeadKind;
  /** yolox: the grid strides (default 8, 16, 32). */
  strides?: number[];
  /** prior-box: the boxes are offsets against these priors (else decoded corners). */
  priors?: PriorSpec;
  /** prior-box: what the score output holds (default probabilities). */
  scores?: BoxScores;
  /** prior-box: class 0 is background (default true). */
  background?: boolean;
}

interface Output {
  name: string;
  shape: number[];
}

/** Score and box outputs of a prior-box head: [1,N,C] and [1,N,4]. When both end in 4, a name
 *  saying box/loc/reg picks the boxes, else the second of the two. */
function priorPair(outputs: readonly Output[]): { scores: Output; boxes: Output } | undefined {
  const rows = outputs.filter((o) => o.shape.length === 3 && o.shape[0] === 1 && o.shape[1] > 0 && o.shape[2] > 0);
  for (const [i, a] of rows.entries()) {
    for (const b of rows.slice(i + 1)) {
      if (a.shape[1] !== b.shape[1] || (a.shape[2] !== 4 && b.shape[2] !== 4)) continue;
      const boxLike = (o: Output) => o.shape[2] === 4 && /box|loc|reg/i.test(o.name);
      const aIsBoxes = a.shape[2] === 4 && (b.shape[2] !== 4 || (boxLike(a) && !boxLike(b)));
      return aIsBoxes ? { scores: b, boxes: a } : { scores: a, boxes: b };
    }
  }
  return undefined;
}

/** The decoder of the model's head for a width x height input. */
export function detectionHead(outputs: readonly Output[], width: number, height: number, o: HeadOptions = {}): DetectionHead {
  const shapes = outputs.map((v) => `"${v.name}" [${v.shape}]`).join(', ');
  const pair = priorPair(outputs);
  const head = o.head ?? (pair || o.priors ? 'prior-box' : 'yolox');
  if (head === 'prior-box') {
    if (!pair) fail('BAD_INPUT', `a prior-box head has a score output [1,N,classes] and a box output [1,N,4]; this model's outputs are ${shapes}`);
    return priorBoxHead(pair.scores, pair.boxes, { width, height, priors: o.priors, scores: o.scores, background: o.background });
  }
  if (head !== 'yolox') fail('BAD_OPTION', `unknown detection head "${head}" (heads: ${HEAD_KINDS.join(', ')})`);
  const strides = o.strides ?? YOLOX_STRIDES;
  const rows = yoloxRows(width, height, strides);
  const out = outputs.find((v) => v.shape.length === 3 && v.shape[1] === rows && v.shape[2] > 5);
  if (!out) {
    fail('BAD_INPUT', `no output holds a YOLOX head (${rows} rows of 5 + classes for strides ${strides.join('/')} of a ${width}x${height} input) `
      + `nor a prior-box pair ([1,N,classes] and [1,N,4]); the outputs are ${shapes}`);
  }
  return yoloxHead(out, width, height, strides);
}
