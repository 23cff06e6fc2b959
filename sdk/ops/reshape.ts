/** Ops that only relabel the shape of their input: the data is shared, never moved.
 *  Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout (inference: identity). */
import { attr, axis, constInput, input, numel, opError, type CompileContext, type OpModule } from './op.js';
import { moveFixed } from './fixed.js';

export interface ReshapeParams { shape: number[] }

function reshapeTarget(ctx: CompileContext, inShape: number[]): number[] {
  const spec = ctx.opset < 5 ? attr.ints(ctx, 'shape') : constInput(ctx, 1, 'the target shape');
  if (!spec) opError(ctx.node, 'the target shape is missing');
  const allowZero = attr.int(ctx, 'allowzero', 0) !== 0;
  const out = spec.map((d, i) => (d === 0 && !allowZero ? inShape[i] : d));
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const wild = out.indexOf(-1);
  if (wild >= 0) {
    if (out.indexOf(-1, wild + 1) >= 0) opError(ctx.node, 'more than one -1 in the target shape');
    out[wild] = known === 0 ? 0 : numel(inShape) / known;
  }
  if (out.some((d) => !Number.isInteger(d) || d < 0) || numel(out) !== numel(inShape)) {
    opError(ctx.node, `cannot reshape [${inShape}] to [${spec}]`);
  }
  return out;
}

function squeezeAxes(ctx: CompileContext): number[] | undefined {
  return ctx.opset < 13 ? attr.ints(ctx, 'axes') : constInput(ctx, 1, 'axes');
}

const SHAPE_RULES: Record<string, (ctx: CompileContext, s: number[]) => number[]> = {
  Reshape: reshapeTarget,
  Flatten(ctx, s) {
    const a = attr.int(ctx, 'axis', 1);
    const ax = a < 0 ? a + s.length : a;
    if (ax < 0 || ax > s.length) opError(ctx.node, `axis ${a} is out of range for rank ${s.length}`);
    return [numel(s.slice(0, ax)), numel(s.slice(ax))];
  },
  Squeeze(ctx, s) {
    const axes = squeezeAxes(ctx)?.map((a) => axis(ctx, a, s.length));
    if (axes?.some((a) => s[a] !== 1)) opError(ctx.node, `cannot squeeze axes [${axes}] of [${s}]`);
    return s.filter((d, i) => (axes ? !axes.includes(i) : d !== 1));
  },
  Unsqueeze(ctx, s) {
    const raw = squeezeAxes(ctx);
    if (!raw) opError(ctx.node, 'axes are required');
    const rank = s.length + raw.length;
    const axes = raw.map((a) => axis(ctx, a, rank));
    const out: number[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : s[j++]);
    return out;
  },
  Identity: (_ctx, s) => s,
  Dropout: (_ctx, s) => s,
};

export const reshape: OpModule<ReshapeParams> = {
  ops: Object.keys(SHAPE_RULES),
  alias: true,
  movesData: true,
  compile(ctx) {
    const x = input(ctx, 0);
    if (ctx.node.op === 'Dropout' && ctx.node.outputs[1]) opError(ctx.node, 'the mask output is not supported');
    const shape = SHAPE_RULES[ctx.node.op](ctx, x.shape);
    return { params: { shape }, outputs: [{ dtype: x.dtype, shape }] };
  },
  reference(_p, [x], [y]) {
    y.set(x);
  },
};

/** Fixed point: the same integers (the engine shares the buffer when the formats agree). */
reshape.fixed = moveFixed(reshape);
