/**
 * Seeded random CNNs on the project's IR, built to stress calibration: the supported ops
 * (convolutions plain, strided, depthwise and transposed, activations, Add/Sub/Mul/Concat of
 * branches, pools, nearest resizes, moves, attention's MatMul of two activations with a Softmax,
 * Gemm/Sigmoid/Softmax heads) and the statistics real models have and calibrators trip on: dead
 * and denormal weight channels, channels whose ranges differ by 2^10, tensors that are constant
 * or always 0, Add/Mul/Concat inputs at very different scales, inputs of any magnitude.
 */
import { numel, type Node, type Tensor } from '../sdk/graph/ir.js';
import { buildModel, floats, ints, node, rng, type ModelSpec } from './helpers.js';

type Rng = ReturnType<typeof rng>;

interface T {
  name: string;
  shape: number[];
}

export interface RandomCnn {
  bytes: Uint8Array;
  /** Input shape, the samples to calibrate on (one may be constant), and what was built. */
  shape: number[];
  samples: Float32Array[];
  ops: string[];
}

const int = (r: Rng, lo: number, hi: number) => Math.floor(r(lo, hi + 1));
const pick = <X>(r: Rng, xs: readonly X[]): X => xs[int(r, 0, xs.length - 1)];

export function randomCnn(seed: number): RandomCnn {
  const r = rng(seed);
  const nodes: Node[] = [];
  const inits: Record<string, Tensor> = {};
  const ops: string[] = [];
  let k = 0;
  const fresh = (p: string) => `${p}${k++}`;
  const init = (dims: number[], f: (i: number) => number) => {
    const name = fresh('w');
    inits[name] = floats(dims, Array.from({ length: numel(dims) }, (_, i) => f(i)));
    return name;
  };
  const add = (op: string, inputs: string[], attrs: Record<string, never> | Record<string, unknown> = {}, shape: number[]): T => {
    const out = fresh('t');
    nodes.push(node(op, inputs, [out], attrs as never));
    ops.push(op);
    return { name: out, shape };
  };

  /** Weights for m output channels of `inner` values each, with a pathology now and then. */
  const weights = (dims: number[], m: number, inner: number, channelAxis0 = true) => {
    const scale = new Float64Array(m).fill(1);
    const kind = r();
    const c = int(r, 0, m - 1);
    if (kind < 0.12) scale[c] = 0; // a dead channel
    else if (kind < 0.22) scale[c] = pick(r, [1e-39, 4e-10, 2 ** -30]); // denormal or tiny
    else if (kind < 0.36) scale[c] = 2 ** pick(r, [10, -10]); // channel ranges 2^10 apart
    const whole = r() < 0.15 ? 2 ** pick(r, [-12, -6, 6]) : 1;
    const channelOf = (i: number) => (channelAxis0 ? Math.floor(i / inner) : i % m);
    return init(dims, (i) => r(-1, 1) * scale[channelOf(i)] * whole / Math.sqrt(inner));
  };
  const bias = (m: number) => init([m], () => (r() < 0.1 ? r(-50, 50) : r(-0.3, 0.3)));

  const activation = (x: T): T => {
    const a = r();
    if (a < 0.35) return add('Relu', [x.name], {}, x.shape);
    if (a < 0.45) return add('Clip', [x.name, init([], () => 0), init([], () => 6)], {}, x.shape);
    if (a < 0.5) return add('LeakyRelu', [x.name], { alpha: 0.1 }, x.shape);
    if (a < 0.55) return add('HardSwish', [x.name], {}, x.shape);
    if (a < 0.6) return add('Tanh', [x.name], {}, x.shape);
    return x;
  };

  const conv = (x: T, opts: { m?: number; depthwise?: boolean; scale?: number; zero?: boolean } = {}): T => {
    const [, c, h, w] = x.shape;
    const depthwise = opts.depthwise ?? (c > 1 && r() < 0.3);
    const m = depthwise ? c : opts.m ?? int(r, 2, 6);
    const kk = pick(r, [1, 3, 3]);
    const stride = h >= 4 && r() < 0.25 ? 2 : 1;
    const pad = (kk - 1) / 2;
    const cg = depthwise ? 1 : c;
    const wName = weights([m, cg, kk, kk], m, cg * kk * kk);
    if (opts.scale !== undefined || opts.zero) {
      const t = inits[wName];
      t.data = Float32Array.from(t.data, (v) => (opts.zero ? 0 : v * opts.scale!));
    }
    const oh = Math.floor((h + 2 * pad - kk) / stride) + 1, ow = Math.floor((w + 2 * pad - kk) / stride) + 1;
    return add('Conv', [x.name, wName, bias(m)], { pads: [pad, pad, pad, pad], strides: [stride, stride], ...(depthwise ? { group: c } : {}) }, [1, m, oh, ow]);
  };

  const C0 = int(r, 1, 3), H = pick(r, [6, 8]);
  const shape = [1, C0, H, H];
  let x: T = { name: 'x', shape };
  const pool: T[] = [x];
  const recent = () => pool[pool.length - 1 - Math.min(pool.length - 1, int(r, 0, 2))];
  const layers = int(r, 3, 8);
  for (let i = 0; i < layers; i++) {
    const kind = r();
    let y: T;
    if (kind < 0.3) {
      y = activation(conv(recent()));
    } else if (kind < 0.42) {
      // Add/Sub of two branches at very different scales, or of a branch with itself (always 0).
      const a = recent();
      const branch = conv(a, { m: a.shape[1], depthwise: false, scale: 2 ** pick(r, [-10, -4, 0, 4, 10]) });
      const b = branch.shape[2] === a.shape[2] ? branch : conv(a, { m: a.shape[1], depthwise: false });
      const same = b.shape[2] === a.shape[2] && b.shape[3] === a.shape[3];
      if (!same) y = b;
      else if (r() < 0.2) y = add('Sub', [a.name, a.name], {}, a.shape);
      else y = activation(add(r() < 0.8 ? 'Add' : 'Sub', [a.name, b.name], {}, a.shape));
    } else if (kind < 0.52) {
      // Mul: a gate (Sigmoid of a branch), or two activations at very different scales.
      const a = recent();
      const b = conv(a, { m: a.shape[1], depthwise: false, scale: 2 ** pick(r, [-8, 0, 8]) });
      if (b.shape[2] !== a.shape[2]) y = b;
      else y = add('Mul', [a.name, r() < 0.5 ? add('Sigmoid', [b.name], {}, b.shape).name : b.name], {}, a.shape);
    } else if (kind < 0.6) {
      const a = recent();
      const b = conv(a, { scale: 2 ** pick(r, [-10, 0, 10]), zero: r() < 0.15 });
      y = b.shape[2] === a.shape[2] ? add('Concat', [a.name, b.name], { axis: 1 }, [1, a.shape[1] + b.shape[1], a.shape[2], a.shape[3]]) : b;
    } else if (kind < 0.7) {
      const a = recent();
      const [, c, h, w] = a.shape;
      if (h >= 2 && r() < 0.5) y = add('MaxPool', [a.name], { kernel_shape: [2, 2], strides: [2, 2] }, [1, c, h >> 1, w >> 1]);
      else y = add('AveragePool', [a.name], { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1] }, a.shape);
    } else if (kind < 0.76) {
      const a = recent();
      const [, c, h, w] = a.shape;
      if (h <= 8 && r() < 0.5) {
        const m = int(r, 2, 4);
        y = activation(add('ConvTranspose', [a.name, weights([c, m, 2, 2], m, 4 * c, false), bias(m)], { strides: [2, 2] }, [1, m, 2 * h, 2 * w]));
      } else if (h <= 8) {
        y = add('Resize', [a.name, '', init([4], (j) => [1, 1, 2, 2][j])], { mode: 'nearest' }, [1, c, 2 * h, 2 * w]);
      } else {
        y = add('Transpose', [a.name], { perm: [0, 1, 3, 2] }, [1, c, w, h]);
      }
    } else if (kind < 0.86) {
      // Attention: S = softmax(A Aᵀ) over the channels, then S A, both MatMuls of activations.
      const a = recent();
      const [, c, h, w] = a.shape;
      const flat = add('Reshape', [a.name, shapeInit([1, c, h * w])], {}, [1, c, h * w]);
      const t = add('Transpose', [flat.name], { perm: [0, 2, 1] }, [1, h * w, c]);
      const scores = add('MatMul', [flat.name, t.name], {}, [1, c, c]);
      const s = add('Softmax', [scores.name], { axis: -1 }, [1, c, c]);
      const mixed = add('MatMul', [s.name, flat.name], {}, [1, c, h * w]);
      y = add('Reshape', [mixed.name, shapeInit([1, c, h, w])], {}, a.shape);
    } else if (kind < 0.92) {
      const a = recent();
      const [, c, h, w] = a.shape;
      if (c >= 2) y = add('Slice', [a.name, shapeInit([0]), shapeInit([c - 1]), shapeInit([1])], {}, [1, c - 1, h, w]);
      else y = add('Pad', [a.name, shapeInit([0, 0, 1, 1, 0, 0, 1, 1])], { mode: 'constant' }, [1, c, h + 2, w + 2]);
    } else {
      y = conv(recent(), { zero: true }); // constant: its bias
    }
    pool.push(y);
    x = y;
  }
  function shapeInit(values: number[]) {
    const name = fresh('s');
    inits[name] = ints([values.length], values);
    return name;
  }

  // A head: classifier (Gemm + Softmax), dense scores (Sigmoid) or the raw features; and
  // sometimes a second output from the middle of the graph.
  const head = r();
  const c = x.shape[1];
  let out: T;
  if (head < 0.35) {
    const g = add('GlobalAveragePool', [x.name], {}, [1, c, 1, 1]);
    const f = add('Flatten', [g.name], { axis: 1 }, [1, c]);
    const n = int(r, 2, 6);
    const gm = add('Gemm', [f.name, weights([n, c], n, c), bias(n)], { transB: 1 }, [1, n]);
    out = add('Softmax', [gm.name], { axis: -1 }, [1, n]);
  } else if (head < 0.7) {
    const scores = conv(x, { m: int(r, 1, 3) });
    out = add('Sigmoid', [scores.name], {}, scores.shape);
  } else {
    out = x;
  }
  const outputs = [out.name];
  const middle = pool[int(r, 1, pool.length - 1)];
  if (r() < 0.3 && middle.name !== out.name) outputs.push(middle.name);

  const spec: ModelSpec = { opset: 13, inputs: [{ name: 'x', dims: shape }], outputs: outputs.map((name) => ({ name })), nodes, initializers: inits };
  const size = numel(shape);
  const magnitude = 2 ** int(r, -4, 4);
  // The images share one distribution (a calibration set's averages mean something); constant and
  // all-zero activations come from the graph (zero weights, x - x) and from dead input channels.
  const deadChannel = C0 > 1 && r() < 0.3 ? int(r, 0, C0 - 1) : -1; // an input channel always 0
  const plane = size / C0;
  const samples = Array.from({ length: 3 }, () =>
    Float32Array.from({ length: size }, (_, j) => (Math.floor(j / plane) === deadChannel ? 0 : r(-1, 1) * magnitude)));
  return { bytes: buildModel(spec), shape, samples, ops };
}
