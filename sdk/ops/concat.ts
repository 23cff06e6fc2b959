/** Concat along one axis. */
import { FRACTION_BITS, MAX_FACTOR, accumulatorLimit, layerBits, rescaleFactor, type TensorQ } from '../device/spec.js';
import { checkLimits, checkRescale, inputQ, intersectLimits, maxAbs, rescaleKernel, rescaleRef, type Rescale } from './fixed.js';
import { attr, axis, input, opError, type FixedOp, type LimitContext, type OpModule, type ScaleLimits } from './op.js';

export interface ConcatParams {
  /** Product of dims before the axis. */
  outer: number;
  /** Per input: its extent along the axis times the product of dims after it. */
  chunks: number[];
}

export const concat: OpModule<ConcatParams> = {
  ops: ['Concat'],
  compile(ctx) {
    const first = input(ctx, 0);
    const rank = first.shape.length;
    const a = axis(ctx, attr.int(ctx, 'axis', rank === 1 ? 0 : 1), rank);
    const shapes = ctx.inputs.map((_, i) => input(ctx, i).shape);
    for (const s of shapes) {
      if (s.length !== rank || s.some((d, i) => i !== a && d !== first.shape[i])) {
        opError(ctx.node, `input shapes ${shapes.map((x) => `[${x}]`).join(' ')} differ off axis ${a}`);
      }
    }
    const inner = first.shape.slice(a + 1).reduce((x, y) => x * y, 1);
    const outShape = [...first.shape];
    outShape[a] = shapes.reduce((t, s) => t + s[a], 0);
    return {
      params: { outer: first.shape.slice(0, a).reduce((x, y) => x * y, 1), chunks: shapes.map((s) => s[a] * inner) },
      outputs: [{ dtype: first.dtype, shape: outShape }],
    };
  },
  reference(p, inputs, [y]) {
    const total = p.chunks.reduce((a, b) => a + b, 0);
    let offset = 0;
    inputs.forEach((x, i) => {
      const c = p.chunks[i];
      for (let o = 0; o < p.outer; o++) y.set(x.subarray(o * c, (o + 1) * c), o * total + offset);
      offset += c;
    });
  },
};

/**
 * Fixed point: every input is brought to the output format through the accumulator at
 * 2^(out + F) (F = concat fractional bits): y = sat(roundShift(x * trunc(2^(out + F - in)), F)),
 * which copies an input already in the output format unchanged.
 */
export interface ConcatFixed { p: ConcatParams; rescales: Rescale[]; inQ: TensorQ[]; yq: TensorQ }

/** Each input's factor into the accumulator 2^(out + F) must keep it inside the word. */
function concatLimits(ctx: LimitContext<ConcatParams>): ScaleLimits | undefined {
  if (ctx.inQ.some((q) => !q)) return undefined;
  const yq = ctx.outQ[0];
  return intersectLimits(ctx.inQ.map((xq) => {
    const bits = layerBits(xq!.bits, yq.bits);
    const F = FRACTION_BITS.concat[bits];
    const fits = (out: number) => {
      const k = rescaleFactor(xq!.scaleLog2, out + F);
      return k <= MAX_FACTOR && maxAbs(xq!) * k + 2 ** (F - 1) <= accumulatorLimit(bits);
    };
    let out = xq!.scaleLog2 + 64;
    while (!fits(out)) out--;
    return { finest: out, finestReason: `the input at 2^${xq!.scaleLog2} brought to the accumulator 2^(out + ${F}) must fit the ${bits === 8 ? 'int32' : 'int64'} word` };
  }));
}

concat.fixed = {
  limits: concatLimits,
  compile(ctx) {
    const limits = concatLimits(ctx);
    if (!limits) return undefined;
    checkLimits(ctx, limits);
    const yq = ctx.outQ[0];
    const inQ = ctx.inputs.map((_, i) => inputQ(ctx, i));
    const rescales = inQ.map((xq) => {
      const bits = layerBits(xq.bits, yq.bits);
      const n = FRACTION_BITS.concat[bits];
      const r = { k: rescaleFactor(xq.scaleLog2, yq.scaleLog2 + n), n, lo: ctx.bounds[0][0], hi: ctx.bounds[0][1] };
      checkRescale(ctx.node, r, xq, bits);
      return r;
    });
    return { p: ctx.params, rescales, inQ, yq };
  },
  // Input i: y = sat(roundShift(x * factor_i, shift_i)).
  describe: (f) => ({ inputs: f.rescales.map((r) => ({ factor: r.k, shift: r.n })), saturate: [f.rescales[0].lo, f.rescales[0].hi] }),
  reference(f, inputs, [y]) {
    const total = f.p.chunks.reduce((a, b) => a + b, 0);
    let offset = 0;
    inputs.forEach((x, i) => {
      const c = f.p.chunks[i];
      for (let o = 0; o < f.p.outer; o++) rescaleRef(f.rescales[i], x, y, o * c, o * total + offset, c);
      offset += c;
    });
  },
  kernel(f, env) {
    const kernels = f.inQ.map((xq) => rescaleKernel(env, xq, f.yq));
    const total = f.p.chunks.reduce((a, b) => a + b, 0);
    const [xb, yb] = [f.inQ.map((q) => q.bits / 8), f.yq.bits / 8];
    return (ins, [y]) => {
      let offset = 0;
      ins.forEach((x, i) => {
        const c = f.p.chunks[i];
        for (let o = 0; o < f.p.outer; o++) kernels[i](f.rescales[i], x + o * c * xb[i], y + (o * total + offset) * yb, c);
        offset += c;
      });
    };
  },
} satisfies FixedOp<ConcatParams, ConcatFixed>;
