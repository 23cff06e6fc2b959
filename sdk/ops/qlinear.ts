/**
 * The ONNX integer ops that peer quantizers (onnxruntime.quantization, Intel Neural Compressor)
 * write: QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul and Microsoft's QLinearAdd and
 * QLinearGlobalAveragePool. p2calib reads them so that a peer's int8 model can be inspected and
 * run beside ours. Integer tensors travel through the float engine as exact float values.
 *
 * The references reproduce ONNX Runtime's CPU arithmetic (MLAS, x86-64) bit for bit, not just the
 * ONNX formulas, so that a peer's model gives the peer's own results here:
 *  - Conv / MatMul: exact int32 accumulation of (x - x_zp) * (w - w_zp) plus the int32 bias, then
 *    a float32 multiplier m = f32(f32(x_scale * w_scale) / y_scale) applied to the accumulator
 *    converted to float32, rounded half to even, plus the zero point, saturated.
 *  - QLinearAdd: float32 ratios a_scale/c_scale and b_scale/c_scale, the zero points folded into one
 *    float32 constant, two fused multiply-adds, rounding half to even, saturation.
 *  - QLinearGlobalAveragePool: int32 sum minus x_zp * size, times f32(x_scale / f32(y_scale * size)).
 *  - QuantizeLinear: float32 division by the scale, half to even, plus the zero point.
 */
import { type DType, type TensorData } from '../graph/ir.js';
import { broadcastShape, broadcastWalk } from './broadcast.js';
import { conv, type ConvParams } from './conv.js';
import { matmul, type MatMulParams } from './matmul.js';
import { attr, axis, input, opError, strides, type CompileContext, type OpModule, type ValueMeta } from './op.js';

const RANGES: Partial<Record<DType, [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], uint16: [0, 65535], int16: [-32768, 32767], int32: [-(2 ** 31), 2 ** 31 - 1],
};

const f32 = Math.fround;

export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Per-element (scale, zero point) lookup for per-tensor or per-axis parameters. */
interface QAxis { blocks: number; size: number; inner: number }
function qAxis(ctx: CompileContext, x: ValueMeta, scale: ValueMeta, which: string): QAxis {
  const total = x.shape.reduce((a, b) => a * b, 1);
  const n = scale.shape.reduce((a, b) => a * b, 1);
  if (n === 1) return { blocks: 1, size: 1, inner: total };
  const a = axis(ctx, attr.int(ctx, 'axis', 1), x.shape.length);
  if (x.shape[a] !== n) opError(ctx.node, `${which} has ${n} values but axis ${a} of [${x.shape}] has ${x.shape[a]}`);
  return { blocks: total / (n * strides(x.shape)[a]), size: n, inner: strides(x.shape)[a] };
}
function eachQ(q: QAxis, f: (i: number, c: number) => void): void {
  let i = 0;
  for (let b = 0; b < q.blocks; b++) for (let c = 0; c < q.size; c++) for (let j = 0; j < q.inner; j++) f(i++, c);
}

export interface QuantizeParams { q: QAxis; range: [number, number]; hasZp: boolean }

export const quantizeLinear: OpModule<QuantizeParams> = {
  ops: ['QuantizeLinear'],
  compile(ctx) {
    const x = input(ctx, 0);
    const zp = ctx.inputs[2];
    const dtype = zp?.dtype ?? 'uint8';
    const range = RANGES[dtype];
    if (!range) opError(ctx.node, `output type ${dtype} is not supported`);
    return { params: { q: qAxis(ctx, x, input(ctx, 1), 'y_scale'), range, hasZp: !!zp }, outputs: [{ dtype, shape: x.shape }] };
  },
  reference(p, [x, scale, zp], [y]) {
    const [lo, hi] = p.range;
    eachQ(p.q, (i, c) => { y[i] = Math.min(hi, Math.max(lo, roundHalfEven(f32(x[i] / scale[c])) + (p.hasZp ? zp[c] : 0))); });
  },
};

export interface DequantizeParams { q: QAxis; hasZp: boolean }

export const dequantizeLinear: OpModule<DequantizeParams> = {
  ops: ['DequantizeLinear'],
  compile(ctx) {
    const x = input(ctx, 0);
    return { params: { q: qAxis(ctx, x, input(ctx, 1), 'x_scale'), hasZp: !!ctx.inputs[2] }, outputs: [{ dtype: 'float32', shape: x.shape }] };
  },
  reference(p, [x, scale, zp], [y]) {
    eachQ(p.q, (i, c) => { y[i] = (x[i] - (p.hasZp ? zp[c] : 0)) * scale[c]; });
  },
};

/** x - zero point, per tensor or per axis (exact small integers). */
function center(x: TensorData, zp: TensorData | undefined, q: QAxis): Float64Array {
  const out = new Float64Array(x.length);
  eachQ(q, (i, c) => { out[i] = x[i] - (zp?.length ? zp[zp.length === 1 ? 0 : c] : 0); });
  return out;
}

/** ONNX Runtime's requantization of an int32 accumulator by a float32 multiplier. */
function requantize(acc: number, multiplier: number, zp: number, [lo, hi]: [number, number]): number {
  return Math.min(hi, Math.max(lo, roundHalfEven(f32(f32(acc) * multiplier)) + zp));
}

/** Per output channel: f32(f32(x_scale * w_scale) / y_scale). */
function multipliers(xs: TensorData, ws: TensorData, ys: TensorData, n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, c) => f32(f32(xs[0] * ws[ws.length === 1 ? 0 : c]) / ys[0]));
}

const zeroPoint = (zp: TensorData | undefined) => (zp?.length ? zp[0] : 0);

export interface QLinearConvParams { conv: ConvParams; xq: QAxis; wq: QAxis; range: [number, number]; m: number }

export const qlinearConv: OpModule<QLinearConvParams> = {
  ops: ['QLinearConv'],
  compile(ctx) {
    const x = input(ctx, 0);
    const w = input(ctx, 3);
    const inner = conv.compile({ ...ctx, inputs: [x, w, ctx.inputs[8]] });
    const dtype = input(ctx, 7).dtype;
    const range = RANGES[dtype];
    if (!range) opError(ctx.node, `output type ${dtype} is not supported`);
    const wq = qAxis({ ...ctx, node: { ...ctx.node, attrs: { axis: { type: 'int', value: 0 } } } }, w, input(ctx, 4), 'w_scale');
    return {
      params: { conv: inner.params, xq: qAxis(ctx, x, input(ctx, 1), 'x_scale'), wq, range, m: w.shape[0] },
      outputs: [{ dtype, shape: inner.outputs[0].shape }],
    };
  },
  reference(p, [x, xs, xzp, w, ws, wzp, ys, yzp, b], [y]) {
    // Integer accumulation in float64 is exact (|acc| < 2^31).
    const acc = new Float64Array(y.length);
    conv.reference(p.conv, [center(x, xzp, p.xq), center(w, wzp, p.wq), b ?? new Float64Array(0)], [acc]);
    const mult = multipliers(xs, ws, ys, p.m);
    const plane = p.conv.oh * p.conv.ow;
    const zp = zeroPoint(yzp);
    for (let i = 0; i < y.length; i++) y[i] = requantize(acc[i], mult[Math.floor(i / plane) % p.m], zp, p.range);
  },
};

export interface QLinearMatMulParams { mm: MatMulParams; aq: QAxis; bq: QAxis; range: [number, number] }

export const qlinearMatMul: OpModule<QLinearMatMulParams> = {
  ops: ['QLinearMatMul'],
  compile(ctx) {
    const a = input(ctx, 0);
    const b = input(ctx, 3);
    const inner = matmul.compile({ ...ctx, inputs: [a, b] });
    const dtype = input(ctx, 7).dtype;
    const range = RANGES[dtype];
    if (!range) opError(ctx.node, `output type ${dtype} is not supported`);
    const bq = qAxis({ ...ctx, node: { ...ctx.node, attrs: { axis: { type: 'int', value: -1 } } } }, b, input(ctx, 4), 'b_scale');
    return {
      params: { mm: inner.params, aq: qAxis(ctx, a, input(ctx, 1), 'a_scale'), bq, range },
      outputs: [{ dtype, shape: inner.outputs[0].shape }],
    };
  },
  reference(p, [a, as, azp, b, bs, bzp, ys, yzp], [y]) {
    const acc = new Float64Array(y.length);
    matmul.reference(p.mm, [center(a, azp, p.aq), center(b, bzp, p.bq)], [acc]);
    const mult = multipliers(as, bs, ys, p.mm.n);
    const zp = zeroPoint(yzp);
    for (let i = 0; i < y.length; i++) y[i] = requantize(acc[i], mult[i % p.mm.n], zp, p.range);
  },
};

export interface QLinearAddParams { aShape: number[]; bShape: number[]; outShape: number[]; range: [number, number] }

export const qlinearAdd: OpModule<QLinearAddParams> = {
  ops: ['com.microsoft:QLinearAdd'],
  compile(ctx) {
    const a = input(ctx, 0);
    const b = input(ctx, 3);
    const outShape = broadcastShape([a.shape, b.shape]);
    if (!outShape) opError(ctx.node, `shapes [${a.shape}] and [${b.shape}] do not broadcast`);
    const range = RANGES[a.dtype];
    if (!range) opError(ctx.node, `type ${a.dtype} is not supported`);
    return { params: { aShape: a.shape, bShape: b.shape, outShape, range }, outputs: [{ dtype: a.dtype, shape: outShape }] };
  },
  reference(p, [a, as, azp, b, bs, bzp, cs, czp], [y]) {
    const ra = f32(as[0] / cs[0]), rb = f32(bs[0] / cs[0]);
    const fixed = f32(zeroPoint(czp) - f32(f32(ra * zeroPoint(azp)) + f32(rb * zeroPoint(bzp))));
    const [lo, hi] = p.range;
    // A fused multiply-add is one rounding of the exact a*r + t; here that sum (8-bit integer times
    // a float32, plus a float32 of similar size) is exact in float64, so one fround is the FMA.
    broadcastWalk(p.outShape, [p.aShape, p.bShape], (k, idx) => {
      const v = f32(a[idx[0]] * ra + f32(b[idx[1]] * rb + fixed));
      y[k] = Math.min(hi, Math.max(lo, roundHalfEven(v)));
    });
  },
};

export interface QLinearGapParams { planes: number; size: number; range: [number, number] }

export const qlinearGlobalAveragePool: OpModule<QLinearGapParams> = {
  ops: ['com.microsoft:QLinearGlobalAveragePool'],
  compile(ctx) {
    const x = input(ctx, 0);
    if (attr.int(ctx, 'channels_last', 0)) opError(ctx.node, 'channels_last is not supported');
    const [n, c, ...spatial] = x.shape;
    const range = RANGES[x.dtype];
    if (!range) opError(ctx.node, `type ${x.dtype} is not supported`);
    return {
      params: { planes: n * c, size: spatial.reduce((a, b) => a * b, 1), range },
      outputs: [{ dtype: x.dtype, shape: [n, c, ...spatial.map(() => 1)] }],
    };
  },
  reference(p, [x, xs, xzp, ys, yzp], [y]) {
    const mult = f32(xs[0] / f32(ys[0] * p.size));
    for (let i = 0; i < p.planes; i++) {
      let acc = -zeroPoint(xzp) * p.size;
      for (let j = 0; j < p.size; j++) acc += x[i * p.size + j];
      y[i] = requantize(acc, mult, zeroPoint(yzp), p.range);
    }
  },
};
