/** Element-wise activations and maths with no learned range of their own: one formula each. */
import { activationFixed } from './fixed.js';
import { ACT, activationKernel, attr, input, numel, type Activation, type OpModule } from './op.js';
import { exp, log, log1p, tanh } from '../util/math.js';

type Fn = (x: number) => number;

/** Defaults of the alpha/beta attributes where the ONNX op has them. */
const DEFAULTS: Record<string, [number, number]> = { LeakyRelu: [0.01, 0], Elu: [1, 0], HardSigmoid: [0.2, 0.5] };

const MAKERS: Record<string, (alpha: number, beta: number) => Fn> = {
  Relu: () => (x) => (x > 0 ? x : 0),
  LeakyRelu: (a) => (x) => (x >= 0 ? x : a * x),
  Elu: (a) => (x) => (x >= 0 ? x : a * (exp(x) - 1)),
  Sigmoid: () => (x) => 1 / (1 + exp(-x)),
  HardSigmoid: (a, b) => (x) => Math.max(0, Math.min(1, a * x + b)),
  HardSwish: () => (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)),
  Tanh: () => tanh,
  Exp: () => exp,
  Log: () => log,
  Sqrt: () => Math.sqrt,
  Neg: () => (x) => -x,
  Abs: () => Math.abs,
  Floor: () => Math.floor,
  Ceil: () => Math.ceil,
  Reciprocal: () => (x) => 1 / x,
  Softplus: () => (x) => log1p(exp(-Math.abs(x))) + Math.max(x, 0),
  Not: () => (x) => +!x,
};

/** Output intervals that hold whatever the input. */
const RANGES: Record<string, [number, number]> = { Sigmoid: [0, 1], HardSigmoid: [0, 1], Tanh: [-1, 1] };

export interface UnaryParams { op: string; fn: Fn; alpha: number; beta: number; n: number }

/** The ops WASM kernels apply as activations (see assembly/float/activation.ts). */
function asActivation(p: UnaryParams): Activation | undefined {
  switch (p.op) {
    case 'Relu': return { code: ACT.CLAMP, p0: 0, p1: Infinity };
    case 'LeakyRelu': return { code: ACT.LEAKY, p0: p.alpha, p1: 0 };
    case 'HardSigmoid': return { code: ACT.HARDSIGMOID, p0: p.alpha, p1: p.beta };
    case 'HardSwish': return { code: ACT.HARDSWISH, p0: 0, p1: 0 };
    case 'Sigmoid': return { code: ACT.SIGMOID, p0: 0, p1: 0 };
    case 'Tanh': return { code: ACT.TANH, p0: 0, p1: 0 };
    default: return undefined;
  }
}

export const unary: OpModule<UnaryParams> = {
  ops: Object.keys(MAKERS),
  elementwise: true,
  compile(ctx) {
    const x = input(ctx, 0);
    const op = ctx.node.op;
    const [da, db] = DEFAULTS[op] ?? [0, 0];
    const alpha = attr.float(ctx, 'alpha', da), beta = attr.float(ctx, 'beta', db);
    return { params: { op, fn: MAKERS[op](alpha, beta), alpha, beta, n: numel(x.shape) }, outputs: [{ dtype: x.dtype, shape: x.shape }] };
  },
  outputRange: (p) => RANGES[p.op],
  reference(p, [x], [y]) {
    const fn = p.fn;
    for (let i = 0; i < y.length; i++) y[i] = fn(x[i]);
  },
  // Fused into the producer by the float engine where no one observes the producer's output
  // (calibration observes its points, so they are never fused away).
  activation: asActivation,
  clip: (p) => (p.op === 'Relu' ? { min: 0, max: Infinity } : undefined),
  kernel(p, env) {
    const a = asActivation(p);
    return a && activationKernel(env, a, p.n);
  },
};

/** Fixed point: Relu is the saturation at 0; the other ops here run as float fallback. */
unary.fixed = activationFixed(unary);
