/** Ops whose output is known while compiling: Constant, Shape, ConstantOfShape, and Cast,
 *  Expand and Range when their inputs are constant (they are folded; at run time only Cast and
 *  Expand of activations execute). */
import { fail } from '../errors.js';
import { attrTensor, isFloat, tensor, type DType, type Tensor } from '../graph/ir.js';
import { checkDims, dtypeFromOnnx } from '../onnx/tensor.js';
import { broadcastShape, broadcastWalk } from './broadcast.js';
import { moveFixed } from './fixed.js';
import { attr, constInput, input, opError, type OpModule } from './op.js';

export const constant: OpModule<{ value: Tensor }> = {
  ops: ['Constant'],
  compile(ctx) {
    const n = ctx.node;
    let value = attrTensor(n, 'value');
    if (!value) {
      const a = n.attrs.value_float ?? n.attrs.value_floats ?? n.attrs.value_int ?? n.attrs.value_ints;
      if (!a || (a.type !== 'float' && a.type !== 'floats' && a.type !== 'int' && a.type !== 'ints')) {
        opError(n, 'only tensor and numeric values are supported');
      }
      const values = Array.isArray(a.value) ? a.value : [a.value];
      value = tensor(a.type.startsWith('float') ? 'float32' : 'int64', Array.isArray(a.value) ? [values.length] : [], values);
    }
    return { params: { value }, outputs: [{ dtype: value.dtype, shape: value.dims, value }] };
  },
  reference(p, _inputs, [y]) {
    y.set(p.value.data);
  },
};

export const shape: OpModule<{ value: Tensor }> = {
  ops: ['Shape'],
  compile(ctx) {
    const s = input(ctx, 0).shape;
    const rank = s.length;
    const clamp = (v: number) => Math.min(rank, Math.max(0, v < 0 ? v + rank : v));
    const dims = s.slice(clamp(attr.int(ctx, 'start', 0)), clamp(attr.int(ctx, 'end', rank)));
    const value = tensor('int64', [dims.length], dims);
    return { params: { value }, outputs: [{ dtype: 'int64', shape: [dims.length], value }] };
  },
  reference(p, _inputs, [y]) {
    y.set(p.value.data);
  },
};

export const constantOfShape: OpModule<{ fill: number }> = {
  ops: ['ConstantOfShape'],
  compile(ctx) {
    const dims = constInput(ctx, 0, 'the shape') ?? [];
    checkDims(dims, `node "${ctx.node.name}" (ConstantOfShape) output`);
    const v = attrTensor(ctx.node, 'value');
    const dtype: DType = v?.dtype ?? 'float32';
    const fill = v?.data[0] ?? 0;
    const value = tensor(dtype, dims);
    value.data.fill(fill);
    return { params: { fill }, outputs: [{ dtype, shape: dims, value }] };
  },
  reference(p, _inputs, [y]) {
    y.fill(p.fill);
  },
};

export interface CastParams { toInt: boolean; toBool: boolean }

export const cast: OpModule<CastParams> = {
  ops: ['Cast'],
  compile(ctx) {
    const x = input(ctx, 0);
    const to = dtypeFromOnnx(attr.int(ctx, 'to', 1), `node "${ctx.node.name}" (Cast)`);
    if (to === 'string') fail('UNSUPPORTED', `node "${ctx.node.name}" (Cast): casting to strings is not supported`);
    return { params: { toInt: !isFloat(to), toBool: to === 'bool' }, outputs: [{ dtype: to, shape: x.shape }] };
  },
  reference(p, [x], [y]) {
    for (let i = 0; i < y.length; i++) y[i] = p.toBool ? +(x[i] !== 0) : p.toInt ? Math.trunc(x[i]) : x[i];
  },
};

export const expand: OpModule<{ inShape: number[]; outShape: number[] }> = {
  ops: ['Expand'],
  movesData: true,
  compile(ctx) {
    const x = input(ctx, 0);
    const target = constInput(ctx, 1, 'the shape') ?? [];
    const outShape = broadcastShape([x.shape, target]);
    if (!outShape) opError(ctx.node, `[${x.shape}] does not broadcast to [${target}]`);
    return { params: { inShape: x.shape, outShape }, outputs: [{ dtype: x.dtype, shape: outShape }] };
  },
  reference(p, [x], [y]) {
    broadcastWalk(p.outShape, [p.inShape], (k, idx) => { y[k] = x[idx[0]]; });
  },
};

export const range: OpModule<{ start: number; delta: number }> = {
  ops: ['Range'],
  compile(ctx) {
    const [start, limit, delta] = [0, 1, 2].map((i) => constInput(ctx, i, 'start, limit and delta')?.[0] ?? 0);
    if (delta === 0) opError(ctx.node, 'delta must not be 0');
    const count = Math.max(0, Math.ceil((limit - start) / delta));
    return { params: { start, delta }, outputs: [{ dtype: input(ctx, 0).dtype, shape: [count] }] };
  },
  reference(p, _inputs, [y]) {
    for (let i = 0; i < y.length; i++) y[i] = p.start + i * p.delta;
  },
};

/** Fixed point: Expand of an activation repeats its integers. */
expand.fixed = moveFixed(expand);
