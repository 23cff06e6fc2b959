/** Numpy-style multidirectional broadcasting, shared by element-wise ops and MatMul batches. */
import { strides } from './op.js';

export function broadcastShape(shapes: readonly (readonly number[])[]): number[] | undefined {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o]) return undefined;
    }
  }
  return out;
}

/** Strides of `inShape` seen through `outShape` (0 along broadcast axes). */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length;
  const inStrides = strides(inShape);
  const s = new Array<number>(rank).fill(0);
  for (let i = 0; i < inShape.length; i++) {
    const o = rank - inShape.length + i;
    s[o] = inShape[i] === 1 ? 0 : inStrides[i];
  }
  return s;
}

/**
 * Walk every output element of a broadcast over several inputs, calling `f(k, idx)` with the
 * flat output index and the flat index into each input. Nothing is materialized per element,
 * so it suits large activations.
 */
export function broadcastWalk(
  outShape: readonly number[],
  inShapes: readonly (readonly number[])[],
  f: (k: number, idx: Int32Array) => void,
): void {
  const rank = outShape.length;
  const s = inShapes.map((sh) => broadcastStrides(sh, outShape));
  const idx = new Int32Array(inShapes.length);
  const counter = new Array<number>(rank).fill(0);
  let n = 1;
  for (const d of outShape) n *= d;
  for (let k = 0; k < n; k++) {
    f(k, idx);
    for (let a = rank - 1; a >= 0; a--) {
      counter[a]++;
      for (let j = 0; j < idx.length; j++) idx[j] += s[j][a];
      if (counter[a] < outShape[a]) break;
      for (let j = 0; j < idx.length; j++) idx[j] -= s[j][a] * counter[a];
      counter[a] = 0;
    }
  }
}

/**
 * Loops over the elements of `outShape` (row-major) as at most `maxDims` nested loops: dims of
 * size 1 dropped, and neighbouring dims merged where every operand steps through both as one
 * (its stride for the outer dim is its stride for the inner one times the inner size). Per
 * operand, the element strides of the loops. Undefined when more loops would be needed.
 */
export function collapseLoops(
  outShape: readonly number[], strideSets: readonly (readonly number[])[], maxDims: number,
): { dims: number[]; strides: number[][] } | undefined {
  const dims: number[] = [];
  const out: number[][] = strideSets.map(() => []);
  for (let a = outShape.length - 1; a >= 0; a--) {
    const d = outShape[a];
    if (d === 1) continue;
    if (dims.length && strideSets.every((s, j) => s[a] === out[j][0] * dims[0])) {
      dims[0] *= d;
      continue;
    }
    dims.unshift(d);
    strideSets.forEach((s, j) => out[j].unshift(s[a]));
  }
  if (dims.length > maxDims) return undefined;
  while (dims.length < maxDims) {
    dims.unshift(1);
    out.forEach((s) => s.unshift(0));
  }
  return { dims, strides: out };
}

/** A broadcast as loops (see collapseLoops); along the innermost loop input strides are 0 or 1. */
export function collapseBroadcast(
  outShape: readonly number[], inShapes: readonly (readonly number[])[], maxDims: number,
): { dims: number[]; strides: number[][] } | undefined {
  return collapseLoops(outShape, inShapes.map((s) => broadcastStrides(s, outShape)), maxDims);
}
