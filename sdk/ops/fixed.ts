/**
 * Helpers the op modules' fixed-point parts share: element type codes for the kernels, the
 * arithmetic of a weight layer (shifts, device biases, accumulator bounds), the integer rescale
 * (requantization between formats) with its kernel binding, and the fixed part of ops that only
 * move data. The device's rules themselves are in device/spec.ts.
 */
import { fail } from '../errors.js';
import { QCODE as CODES } from './codes.js';
import { numel, type Node, type Tensor, type TensorData } from '../graph/ir.js';
import { floorLog2 } from '../util/math.js';
import {
  MAX_FACTOR, accumulatorLimit, deviceBiases, formatShift, layerBits, layerShift, maxShift, qRange, qType, roundShift, sameFormat, saturate,
  type Bits, type QType, type TensorQ,
} from '../device/spec.js';
import {
  geometryBlock, kernelFn, type FixedContext, type FixedKernelEnv, type FixedOp, type KernelCall, type LayerArith, type LimitContext, type MoveEnv, type OpModule,
  type ScaleLimits, type StepIntegers, type ValueMeta, type WeightLayout,
} from './op.js';

/** Element type codes of the integer kernels (assembly/shared.json). */
export const QCODE: Record<QType, number> = CODES;

export function qCode(q: TensorQ): number {
  return QCODE[qType(q)];
}

export function bytesOf(q: TensorQ): number {
  return q.bits / 8;
}

/** Largest |value| a format holds. */
export function maxAbs(q: TensorQ): number {
  const [lo, hi] = qRange(q.bits, q.signed);
  return Math.max(-lo, hi);
}

export function specError(node: Node, message: string): never {
  fail('BAD_INPUT', `quantization spec, node "${node.name}" (${node.op}): ${message}`);
}

/** The runtime input i's format; the engine guarantees it for runtime inputs. */
export function inputQ(ctx: Pick<LimitContext<unknown>, 'inQ' | 'node'>, i: number): TensorQ {
  const q = ctx.inQ[i];
  if (!q) specError(ctx.node, `input ${i} must be computed at run time in fixed point`);
  return q;
}

/** Refuse an output format outside the scales the op's arithmetic takes (ScaleLimits). */
export function checkLimits(ctx: LimitContext<unknown>, limits: ScaleLimits): void {
  const out = ctx.outQ[0].scaleLog2;
  if (limits.finest !== undefined && out > limits.finest) {
    specError(ctx.node, `the output scale 2^${out} is finer than 2^${limits.finest}, the finest its integer arithmetic takes (${limits.finestReason}); ` +
      'calibration lowers such scales');
  }
  if (limits.coarsest !== undefined && out < limits.coarsest) {
    specError(ctx.node, `the output scale 2^${out} is coarser than 2^${limits.coarsest}, the coarsest its integer arithmetic takes (${limits.coarsestReason})`);
  }
}

/**
 * Output scales of a format change from `xq` (formatShift) in a `bits` word: finer outputs
 * multiply by k = 2^(out - in), which must keep max|x| * k inside the word and k inside an int32
 * kernel argument; coarser ones shift right by n = in - out, at most maxShift.
 */
export function rescaleLimits(xq: TensorQ, bits: Bits): ScaleLimits {
  const up = floorLog2(Math.min(MAX_FACTOR, accumulatorLimit(bits) / maxAbs(xq)));
  const down = maxShift(bits, maxAbs(xq));
  return {
    finest: xq.scaleLog2 + up, coarsest: xq.scaleLog2 - down,
    finestReason: `the rescale factor 2^${up} of the input at 2^${xq.scaleLog2} must fit the ${bits === 8 ? 'int32' : 'int64'} word`,
    coarsestReason: `a right shift of at most ${down}`,
  };
}

/** The intersection of several limits (the tighter bound and its reason on each side). */
export function intersectLimits(all: ScaleLimits[]): ScaleLimits {
  const out: ScaleLimits = {};
  for (const l of all) {
    if (l.finest !== undefined && (out.finest === undefined || l.finest < out.finest)) [out.finest, out.finestReason] = [l.finest, l.finestReason];
    if (l.coarsest !== undefined && (out.coarsest === undefined || l.coarsest > out.coarsest)) [out.coarsest, out.coarsestReason] = [l.coarsest, l.coarsestReason];
  }
  return out;
}

/** Fail unless an accumulator bound stays inside the layer's word (see accumulatorLimit). */
export function checkAccumulator(node: Node, bound: number, bits: Bits, what: string): void {
  if (bound > accumulatorLimit(bits)) {
    specError(node, `${what} can reach ${bound}, beyond the ${bits === 8 ? 'int32' : 'int64'} accumulator; ` +
      'lower the weight or input scales');
  }
}

/**
 * The arithmetic of a weight layer; `channelOf` maps a flat weight index to its output channel.
 * One output value meets each weight of its channel at most once, so max|x| * sum|w| over the
 * channel bounds its sum of products.
 */
export function weightArith(ctx: FixedContext<unknown>, weightShape: number[], channels: number, channelOf: (i: number) => number): LayerArith {
  const { node, layer } = ctx;
  if (!layer) specError(node, 'a weight layer needs a LayerQ');
  const xq = inputQ(ctx, 0);
  const yq = ctx.outQ[0];
  const count = numel(weightShape);
  if (layer.weights.length !== count) specError(node, `weights hold ${layer.weights.length} values; the weight [${weightShape}] has ${count}`);
  const ws = layer.weightScaleLog2;
  if (ws.length !== 1 && ws.length !== channels) specError(node, `weightScaleLog2 must hold 1 or ${channels} values, not ${ws.length}`);
  if (!ws.every(Number.isInteger)) specError(node, 'weightScaleLog2 values must be integers');
  if (layer.bias.length !== channels && layer.bias.length !== 0) specError(node, `bias must hold ${channels} values, not ${layer.bias.length}`);
  const wBits: Bits = layer.weights instanceof Int16Array ? 16 : 8;
  const bits = layerBits(xq.bits, yq.bits, wBits);
  const wLog2 = (c: number) => ws[ws.length === 1 ? 0 : c];
  const shift = new Int32Array(channels);
  const accLog2 = new Int32Array(channels);
  const maxShift = bits === 8 ? 31 : 62;
  for (let c = 0; c < channels; c++) {
    const n = layerShift(xq.scaleLog2, wLog2(c), yq.scaleLog2);
    if (n < 0) {
      specError(node, `channel ${c}: the output scale 2^${yq.scaleLog2} is finer than the accumulator scale 2^${xq.scaleLog2 + wLog2(c)} ` +
        `(input 2^${xq.scaleLog2} x weights 2^${wLog2(c)}); calibration must keep out.scaleLog2 <= in.scaleLog2 + weightScaleLog2 (shift n >= 0)`);
    }
    if (n > maxShift) specError(node, `channel ${c}: shift ${n} exceeds ${maxShift}, the largest the ${bits}-bit path takes`);
    shift[c] = n;
    accLog2[c] = xq.scaleLog2 + wLog2(c);
  }
  const macBound = new Float64Array(channels);
  for (let i = 0; i < count; i++) macBound[channelOf(i)] += Math.abs(layer.weights[i]);
  const xMax = maxAbs(xq);
  for (let c = 0; c < channels; c++) macBound[c] *= xMax;
  const arith: LayerArith = {
    bits, channels, shift, accLog2, macBound, lo: ctx.bounds[0][0], hi: ctx.bounds[0][1],
    bias: new Int32Array(channels),
    setBias(bias) {
      const dev = deviceBiases(bias, channels, xq, wLog2, bits, ctx.biasMode);
      for (let c = 0; c < channels; c++) {
        const rnd = shift[c] > 0 ? 2 ** (shift[c] - 1) : 0;
        checkAccumulator(node, macBound[c] + Math.abs(dev[c]) + rnd, bits, `the accumulator of channel ${c}`);
      }
      arith.bias.set(dev);
    },
  };
  arith.setBias(layer.bias);
  return arith;
}

/** One output value of a weight layer from its accumulator (sums kept when requested). */
export function finishAcc(a: LayerArith, c: number, acc: number): number {
  const v = acc + a.bias[c];
  if (a.accSums) a.accSums[c] += v;
  return saturate(roundShift(v, a.shift[c]), a.lo, a.hi);
}

// ---- rescale: y = sat(roundShift(x * k, n)), the requantization between formats ----

export interface Rescale {
  k: number;
  n: number;
  lo: number;
  hi: number;
}

/** Rescale that moves a tensor from one format to another exactly (spec.ts formatShift). */
export function formatChange(from: TensorQ, to: TensorQ, bounds: [number, number]): Rescale {
  return { ...formatShift(from, to), lo: bounds[0], hi: bounds[1] };
}

export function rescaleRef(r: Rescale, x: TensorData, y: TensorData, from = 0, to = 0, count = y.length): void {
  for (let i = 0; i < count; i++) y[to + i] = saturate(roundShift(x[from + i] * r.k, r.n), r.lo, r.hi);
}

/**
 * The element-wise kernel y = sat(roundShift(ka*a + kb*b, n)) over `len` elements (b = 0: one
 * input): int32 SIMD when every operand is 8-bit, int64 scalar otherwise.
 */
export function eltwiseKernel(env: FixedKernelEnv, aq: TensorQ, bq: TensorQ | undefined, yq: TensorQ) {
  const bits = layerBits(aq.bits, bq?.bits ?? 8, yq.bits);
  const k = kernelFn(env, bits === 8 ? 'eltwise_q8_simd' : 'eltwise_q16_scalar');
  const code = (q: TensorQ | undefined) => (!q ? 0 : bits === 8 ? +q.signed : qCode(q));
  const [ac, bc, yc] = [code(aq), code(bq), code(yq)];
  return (a: number, ka: number, b: number, kb: number, len: number, r: Omit<Rescale, 'k'>, y: number) =>
    k(a, ac, ka, b, bc, kb, len, r.n, r.lo, r.hi, y, yc);
}

/** A rescale as calibration.json records it: y = sat(roundShift(x * factor, shift), saturate). */
export function describeRescale(r: Rescale): StepIntegers {
  return { factor: r.k, shift: r.n, saturate: [r.lo, r.hi] };
}

/** A kernel rescaling `count` elements from one byte offset to another. */
export function rescaleKernel(env: FixedKernelEnv, xq: TensorQ, yq: TensorQ): (r: Rescale, x: number, y: number, count: number) => void {
  const k = eltwiseKernel(env, xq, undefined, yq);
  return (r, x, y, count) => k(x, r.k, 0, 0, count, r, y);
}

/** The int32/int64 bound of a rescale, checked at plan time. */
export function checkRescale(node: Node, r: Rescale, xq: TensorQ, bits: Bits): void {
  checkAccumulator(node, maxAbs(xq) * Math.abs(r.k) + (r.n > 0 ? 2 ** (r.n - 1) : 0), bits, 'the rescaled input');
}

// ---- ops that only move data ----

export interface MoveFixed<P> {
  params: P;
  /** Per output: set when its format differs from the input's. */
  rescales: (Rescale | undefined)[];
  xq: TensorQ;
}

/**
 * The fixed part of an op whose outputs hold values of its first input (Reshape, Transpose,
 * Slice, Split, Pad, Gather, nearest Resize, ...): the float reference runs on the integers as
 * is, then each output is requantized if its format differs from the input's (a Split output
 * that is also a model output has a format of its own). `adapt` lets an op convert float
 * parameters (Pad's constant value) to the input's integer domain; `move` binds the op's
 * data-moving kernel, run on the integers when no format changes. Other runtime inputs (Gather's
 * indices computed at run time) are not values of the tensor: such nodes run as float fallback.
 */
export function moveFixed<P>(
  mod: Pick<OpModule<P>, 'reference'>, adapt?: (p: P, xq: TensorQ) => P, move?: (p: P, env: MoveEnv) => KernelCall | undefined,
): FixedOp<P, MoveFixed<P>> {
  const limits = (ctx: LimitContext<P>): ScaleLimits | undefined => {
    if (ctx.inQ.some((q, i) => i > 0 && q)) return undefined;
    const xq = inputQ(ctx, 0);
    return intersectLimits(ctx.outQ.map((yq) => rescaleLimits(xq, layerBits(xq.bits, yq.bits))));
  };
  return {
    limits,
    kernel(f, env) {
      if (!move || f.rescales.some((r) => r)) return undefined;
      return move(f.params, {
        exports: env.exports, alloc: (bytes) => env.alloc(bytes), bytes: bytesOf(f.xq) as 1 | 2,
        f32: (p, n) => new Float32Array(env.buffer(), p, n), i32: (p, n) => new Int32Array(env.buffer(), p, n),
      });
    },
    compile(ctx) {
      const lim = limits(ctx);
      if (!lim) return undefined;
      const xq = inputQ(ctx, 0);
      const params = adapt ? adapt(ctx.params, xq) : ctx.params;
      const [lo, hi] = qRange(xq.bits, xq.signed);
      const rescales = ctx.outQ.map((yq, i) => {
        const [blo, bhi] = ctx.bounds[i];
        if (sameFormat(xq, yq) && blo <= lo && bhi >= hi) return undefined;
        checkLimits({ ...ctx, outQ: [yq] }, lim);
        const rescale = formatChange(xq, yq, ctx.bounds[i]);
        checkRescale(ctx.node, rescale, xq, layerBits(xq.bits, yq.bits));
        return rescale;
      });
      return { params, rescales, xq };
    },
    reference(f, inputs, outputs) {
      if (f.rescales.every((r) => !r)) return mod.reference(f.params, inputs, outputs);
      // Run on wide integers, then requantize: an output type may be narrower than the input's.
      const wide = outputs.map((o) => new Int32Array(o.length));
      mod.reference(f.params, inputs, wide);
      wide.forEach((w, i) => {
        const r = f.rescales[i];
        if (r) rescaleRef(r, w, outputs[i]);
        else outputs[i].set(w);
      });
    },
    // One output (or several sharing one format change): its rescale; else each output's, by index.
    describe: (f) => {
      const changed = f.rescales.flatMap((r, i) => (r ? [[i, r] as const] : []));
      if (changed.length === f.rescales.length && changed.every(([, r]) => r.k === changed[0][1].k && r.n === changed[0][1].n)) return describeRescale(changed[0][1]);
      return Object.fromEntries(changed.flatMap(([i, r]) => Object.entries(describeRescale(r)).map(([k, v]) => [`${k}${i}`, v])));
    },
  };
}

// ---- weight layers ----

/** Gemm's and MatMul's weights [K, N] (the columns are the output channels). */
export function columnLayout(w: Tensor): WeightLayout {
  const n = w.dims[w.dims.length - 1];
  return { channels: n, channelOf: (i) => i % n };
}

/** Gemm and MatMul are one MMA layer when B is a constant matrix and A is computed at run time
 *  (a batched constant B [.., K, N] runs as float fallback). */
export function constantB(inputs: readonly (ValueMeta | undefined)[]): boolean {
  const w = inputs[1]?.value;
  return !!w && w.dims.length === 2 && !inputs[0]?.value;
}

export interface WeightGeometry<P> {
  /** The op's parameters with bias and scaling removed: its float reference then computes the
   *  exact integer sums of products (every term and sum is an integer far below 2^53). */
  macParams: P;
  weightShape: number[];
  channels: number;
  /** Output channel of a flat weight index and of a flat output index. */
  weightChannel: (i: number) => number;
  outChannel: (i: number) => number;
  outLength: number;
}

export interface WeightFixed<P> extends WeightGeometry<P> {
  arith: LayerArith;
  w: Int8Array | Int16Array;
  xq: TensorQ;
  yq: TensorQ;
  /** The integer reference's buffers, made on its first run (a plan with kernels never needs
   *  them): the weights as float32 (exact), so that the float reference reads the array type it
   *  always reads and only its output (float64, to hold the sums exactly) differs. */
  ref?: { wf: Float32Array; acc: Float64Array };
}

/**
 * The fixed part of a weight layer (Conv, ConvTranspose, Gemm, MatMul): acc = sum x*w (the op's
 * own reference on integers), + device bias, round-shift, saturate. `kernel` binds WASM kernels.
 */
export function weightFixed<P>(
  mod: Pick<OpModule<P>, 'reference'>,
  geometry: (ctx: FixedContext<P>) => WeightGeometry<P>,
  kernel?: (f: WeightFixed<P>, env: FixedKernelEnv) => KernelCall | undefined,
): FixedOp<P, WeightFixed<P>> {
  return {
    fusesActivation: true,
    // Calibration chooses weight layers' output and weight scales together (quant/calibrate.ts).
    limits: () => undefined,
    compile(ctx) {
      // Without a LayerQ (runtime weights, a transposed A) the node runs as float fallback.
      if (!ctx.layer) return undefined;
      const g = geometry(ctx);
      const arith = weightArith(ctx, g.weightShape, g.channels, g.weightChannel);
      const w = ctx.layer!.weights;
      return { ...g, arith, w, xq: inputQ(ctx, 0), yq: ctx.outQ[0] };
    },
    arith: (f) => f.arith,
    // acc = sum x*w + bias[c]; y = sat((acc + 2^(shift[c]-1)) >> shift[c]); bias at 2^accLog2[c].
    describe: ({ arith: a }) => ({ bias: Array.from(a.bias), accLog2: Array.from(a.accLog2), shift: Array.from(a.shift), saturate: [a.lo, a.hi] }),
    reference(f, [x], [y]) {
      const { wf, acc } = (f.ref ??= { wf: Float32Array.from(f.w), acc: new Float64Array(f.outLength) });
      mod.reference(f.macParams, [Float32Array.from(x), wf], [acc]);
      for (let i = 0; i < y.length; i++) y[i] = finishAcc(f.arith, f.outChannel(i), acc[i]);
    },
    kernel,
  };
}

/**
 * Bias, shift and accumulator-sum buffers of a weight layer's kernel, the bias refreshed per call
 * (setBias may have changed it). With `correction`, the bias is also kept as int64 plus that
 * correction per channel (the 16-bit product's uint16 offset).
 */
export function layerBuffers(env: FixedKernelEnv, a: LayerArith, correction?: Float64Array) {
  const m = a.channels;
  const bias = env.alloc(m * 4), shift = env.alloc(m * 4), sums = env.alloc(m * 8);
  const bias64 = correction ? env.alloc(m * 8) : 0;
  new Int32Array(env.buffer(), shift, m).set(a.shift);
  return {
    bias, bias64, shift,
    /** Copy the current device bias in; returns the sums pointer (0 when not collecting). */
    begin(): number {
      const buf = env.buffer();
      new Int32Array(buf, bias, m).set(a.bias);
      if (correction) {
        const wide = new BigInt64Array(buf, bias64, m);
        for (let c = 0; c < m; c++) wide[c] = BigInt(a.bias[c] + correction[c]);
      }
      if (!a.accSums) return 0;
      new Float64Array(buf, sums, m).fill(0);
      return sums;
    },
    end(): void {
      if (!a.accSums) return;
      const s = new Float64Array(env.buffer(), sums, m);
      for (let c = 0; c < m; c++) a.accSums[c] += s[c];
    },
  };
}

/**
 * Weights for the pair products (assembly/int/gemm.ts, gemm16.ts): i16 pairs along K, 4 output
 * channels side by side, [groups][ceil(mg/4)][ceil(K/2)][4][2]. `weightAt(oc, t)`: output channel
 * oc's t-th weight (t < kk).
 */
export function packPairWeights(env: FixedKernelEnv, groups: number, mg: number, kk: number, weightAt: (oc: number, t: number) => number) {
  const half = Math.ceil(kk / 2), blocks = Math.ceil(mg / 4);
  const groupWords = blocks * half * 4;
  const packed = new Int16Array(groups * groupWords * 2);
  for (let oc = 0; oc < groups * mg; oc++) {
    const g = Math.floor(oc / mg), j = oc % mg;
    // Element (t >> 1, j & 3, t & 1) of the channel's block, the pair index outermost.
    const base = (g * blocks + (j >> 2)) * half * 8 + (j & 3) * 2;
    for (let t = 0; t < kk; t++) packed[base + (t >> 1) * 8 + (t & 1)] = weightAt(oc, t);
  }
  return { ptr: allocI16(env, packed), groupBytes: groupWords * 4, half };
}

/**
 * The pair product of a 16-bit layer (assembly/int/gemm16.ts) needs no weight at -32768 (two such
 * products overflow an i32 lane; the scalar kernel runs then). uint16 inputs are packed as
 * x - 32768, so each channel's bias gains 32768 * sum(w): returns that correction, or undefined.
 */
export function pairs16(xq: TensorQ, channels: number, kk: number, weightAt: (oc: number, t: number) => number): Float64Array | undefined {
  const correction = new Float64Array(channels);
  for (let oc = 0; oc < channels; oc++) {
    for (let t = 0; t < kk; t++) {
      const w = weightAt(oc, t);
      if (w === -32768) return undefined;
      if (xq.bits === 16 && !xq.signed) correction[oc] += 32768 * w;
    }
  }
  return correction;
}

/** The kernel packing one group's input for the pair products: 8-bit inputs as 8-bit, 16-bit
 *  with the uint16 offset; the input itself (pointwise) or its im2col, of the image of geometry
 *  block `geom` (geometryBlock; unread when pointwise). */
export function pairPacker(env: FixedKernelEnv, xq: TensorQ, pointwise: boolean): (xg: number, cg: number, pixels: number, geom: number, dst: number) => void {
  const flag = xq.bits === 8 ? +xq.signed : pointwise ? +!xq.signed : qCode(xq);
  if (pointwise) {
    const k = kernelFn(env, xq.bits === 8 ? 'pack_pairs_q8' : 'pack_pairs_q16');
    return (xg, cg, pixels, _geom, dst) => k(xg, cg, pixels, flag, dst);
  }
  const k = kernelFn(env, xq.bits === 8 ? 'im2col_pairs_q8' : 'im2col_pairs_q16');
  return (xg, _cg, _pixels, geom, dst) => k(xg, flag, geom, dst);
}

/** Copy values into WASM memory as i16 at a fresh allocation. */
export function allocI16(env: FixedKernelEnv, values: ArrayLike<number>, length = values.length): number {
  const ptr = env.alloc(length * 2);
  new Int16Array(env.buffer(), ptr, length).set(values);
  return ptr;
}

/**
 * Fully connected kernels for Gemm/MatMul: `rows` input rows of k values against n features.
 * Weights are given by `weightAt(k, n)` and packed once, feature-major.
 */
export function fcKernel<P>(f: WeightFixed<P>, env: FixedKernelEnv, rows: number, k: number, n: number, weightAt: (kk: number, nn: number) => number): KernelCall {
  const a = f.arith;
  const [xc, yc, xb, yb] = [qCode(f.xq), qCode(f.yq), bytesOf(f.xq), bytesOf(f.yq)];
  const byFeature = (j: number, t: number) => weightAt(t, j);
  const correction = a.bits === 16 ? pairs16(f.xq, n, k, byFeature) : undefined;
  const buf = layerBuffers(env, a, correction);
  if (correction) {
    // The pair product with one pixel: each row's k values are its k channels.
    const w = packPairWeights(env, 1, n, k, byFeature);
    const cols = env.scratch(w.half * 32);
    const pack = pairPacker(env, f.xq, true);
    const gemm = kernelFn(env, 'gemm_q16_pairs_simd');
    return ([x], [y]) => {
      const sums = buf.begin();
      for (let r = 0; r < rows; r++) {
        pack(x + r * k * xb, k, 1, 0, cols.ptr);
        gemm(w.ptr, cols.ptr, w.half, n, 1, buf.bias64, buf.shift, a.lo, a.hi, y + r * n * yb, yc, sums);
      }
      buf.end();
    };
  }
  if (a.bits === 16) {
    // The 1x1 case of the direct convolution, one row (k channels) at a time.
    const wt = new Int16Array(n * k);
    for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) wt[j * k + t] = weightAt(t, j);
    const wPtr = allocI16(env, wt);
    const conv = kernelFn(env, 'conv_q16_direct');
    const geom = geometryBlock(env, { n: 1, c: k, h: 1, w: 1, m: n, group: 1, oh: 1, ow: 1, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1, pt: 0, pl: 0 });
    return ([x], [y]) => {
      const sums = buf.begin();
      for (let r = 0; r < rows; r++) {
        conv(x + r * k * xb, xc, geom, wPtr, buf.bias, buf.shift, a.lo, a.hi, y + r * n * yb, yc, sums);
      }
      buf.end();
    };
  }
  const kp = Math.ceil(k / 8) * 8;
  const np = Math.ceil(n / 4) * 4;
  const wPtr = env.alloc(np * kp);
  const wt = new Int8Array(env.buffer(), wPtr, np * kp);
  for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) wt[j * kp + t] = weightAt(t, j);
  const row = env.scratch(kp * 2);
  const fc = kernelFn(env, 'fc_q8_dot_simd');
  return ([x], [y]) => {
    const sums = buf.begin();
    fc(x, +f.xq.signed, rows, k, wPtr, n, buf.bias, buf.shift, a.lo, a.hi, y, +f.yq.signed, sums, row.ptr);
    buf.end();
  };
}

// ---- activations ----

/** A standalone Relu/Clip (the module's `clip`): requantize to the output format, saturating at
 *  ctx.bounds (the type's limits, and the Clip's own bounds where the spec keeps them). */
export function activationFixed<P>(mod: Pick<OpModule<P>, 'clip'>): FixedOp<P, Rescale & { xq: TensorQ; yq: TensorQ; count: number }> {
  const limits = (ctx: LimitContext<P>): ScaleLimits | undefined => {
    if (!mod.clip?.(ctx.params)) return undefined;
    const xq = inputQ(ctx, 0);
    return rescaleLimits(xq, layerBits(xq.bits, ctx.outQ[0].bits));
  };
  return {
    limits,
    compile(ctx) {
      const lim = limits(ctx);
      if (!lim) return undefined;
      checkLimits(ctx, lim);
      const xq = inputQ(ctx, 0), yq = ctx.outQ[0];
      const r = formatChange(xq, yq, ctx.bounds[0]);
      checkRescale(ctx.node, r, xq, layerBits(xq.bits, yq.bits));
      return { ...r, xq, yq, count: numel(ctx.inputs[0]!.shape) };
    },
    reference(f, [x], [y]) {
      rescaleRef(f, x, y);
    },
    describe: describeRescale,
    kernel(f, env) {
      const k = rescaleKernel(env, f.xq, f.yq);
      return ([x], [y]) => k(f, x, y, f.count);
    },
  };
}
