/** Slice: starts/ends/axes as attributes (< opset 10) or constant inputs with steps (>= 10). */
import { collapseLoops } from './broadcast.js';
import { moveFixed } from './fixed.js';
import { BY_WIDTH, attr, axis, constInput, input, kernelFn, opError, strides, type KernelCall, type MoveEnv, type OpModule } from './op.js';

export interface SliceParams { inShape: number[]; outShape: number[]; starts: number[]; steps: number[] }

export const slice: OpModule<SliceParams> = {
  ops: ['Slice'],
  movesData: true,
  compile(ctx) {
    const x = input(ctx, 0);
    const rank = x.shape.length;
    const old = ctx.opset < 10;
    const starts = old ? attr.ints(ctx, 'starts') : constInput(ctx, 1, 'starts');
    const ends = old ? attr.ints(ctx, 'ends') : constInput(ctx, 2, 'ends');
    if (!starts || !ends || starts.length !== ends.length) opError(ctx.node, 'starts and ends must be given with equal lengths');
    const axes = (old ? attr.ints(ctx, 'axes') : constInput(ctx, 3, 'axes')) ?? starts.map((_, i) => i);
    const stepsIn = (old ? undefined : constInput(ctx, 4, 'steps')) ?? starts.map(() => 1);
    const begin = new Array<number>(rank).fill(0);
    const step = new Array<number>(rank).fill(1);
    const outShape = [...x.shape];
    axes.forEach((a0, i) => {
      const a = axis(ctx, a0, rank);
      const dim = x.shape[a];
      const st = stepsIn[i];
      if (st === 0) opError(ctx.node, 'a step of 0 is not allowed');
      let s = starts[i] < 0 ? starts[i] + dim : starts[i];
      let e = ends[i] < 0 ? ends[i] + dim : ends[i];
      if (st > 0) {
        s = Math.min(Math.max(s, 0), dim);
        e = Math.min(Math.max(e, 0), dim);
      } else {
        s = Math.min(Math.max(s, 0), dim - 1);
        e = Math.min(Math.max(e, -1), dim - 1);
      }
      begin[a] = s;
      step[a] = st;
      outShape[a] = Math.max(0, Math.ceil((e - s) / st));
    });
    return { params: { inShape: x.shape, outShape, starts: begin, steps: step }, outputs: [{ dtype: x.dtype, shape: outShape }] };
  },
  reference(p, [x], [y]) {
    const s = strides(p.inShape);
    const rank = p.outShape.length;
    let src = p.starts.reduce((acc, v, a) => acc + v * s[a], 0);
    const counter = new Array<number>(rank).fill(0);
    for (let k = 0; k < y.length; k++) {
      y[k] = x[src];
      for (let a = rank - 1; a >= 0; a--) {
        counter[a]++;
        src += p.steps[a] * s[a];
        if (counter[a] < p.outShape[a]) break;
        src -= p.steps[a] * s[a] * counter[a];
        counter[a] = 0;
      }
    }
  },
  kernel: (p, env) => sliceKernel(p, { ...env, bytes: 4 }),
};

/** A strided copy of elements of `env.bytes` bytes. */
function sliceKernel(p: SliceParams, env: MoveEnv): KernelCall | undefined {
  const s = strides(p.inShape);
  const loops = collapseLoops(p.outShape, [p.steps.map((st, a) => st * s[a])], 4);
  if (!loops) return undefined;
  const start = env.bytes * p.starts.reduce((acc, v, a) => acc + v * s[a], 0);
  const f = kernelFn(env, BY_WIDTH.copy[env.bytes]);
  const { dims: [n0, n1, n2, n3], strides: [[s0, s1, s2, s3]] } = loops;
  return ([x], [y]) => f(x + start, y, n0, n1, n2, n3, s0, s1, s2, s3);
}

/** Fixed point: moves integers as they are. */
slice.fixed = moveFixed(slice, undefined, sliceKernel);
