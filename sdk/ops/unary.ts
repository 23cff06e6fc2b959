/** Element-wise activations and maths with no learned range of their own: one formula each. */
import { activationFixed } from './fixed.js';
import { input, attr, type OpModule } from './op.js';

type Fn = (x: number) => number;

/** Formulas taking the node's attributes (alpha/beta) where the ONNX op has them. */
const MAKERS: Record<string, (alpha: (d: number) => number, beta: (d: number) => number) => Fn> = {
  Relu: () => (x) => (x > 0 ? x : 0),
  LeakyRelu: (alpha) => { const a = alpha(0.01); return (x) => (x >= 0 ? x : a * x); },
  Elu: (alpha) => { const a = alpha(1); return (x) => (x >= 0 ? x : a * (Math.exp(x) - 1)); },
  Sigmoid: () => (x) => 1 / (1 + Math.exp(-x)),
  HardSigmoid: (alpha, beta) => {
    const a = alpha(0.2), b = beta(0.5);
    return (x) => Math.max(0, Math.min(1, a * x + b));
  },
  HardSwish: () => (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)),
  Tanh: () => Math.tanh,
  Exp: () => Math.exp,
  Log: () => Math.log,
  Sqrt: () => Math.sqrt,
  Neg: () => (x) => -x,
  Abs: () => Math.abs,
  Floor: () => Math.floor,
  Ceil: () => Math.ceil,
  Reciprocal: () => (x) => 1 / x,
  Softplus: () => (x) => Math.log1p(Math.exp(-Math.abs(x))) + Math.max(x, 0),
  Not: () => (x) => +!x,
};

export interface UnaryParams { op: string; fn: Fn }

export const unary: OpModule<UnaryParams> = {
  ops: Object.keys(MAKERS),
  compile(ctx) {
    const x = input(ctx, 0);
    const fn = MAKERS[ctx.node.op]((d) => attr.float(ctx, 'alpha', d), (d) => attr.float(ctx, 'beta', d));
    return { params: { op: ctx.node.op, fn }, outputs: [{ dtype: x.dtype, shape: x.shape }] };
  },
  reference(p, [x], [y]) {
    const fn = p.fn;
    for (let i = 0; i < y.length; i++) y[i] = fn(x[i]);
  },
};

/** Fixed point: Relu is the saturation at 0; the other ops here run as float fallback. */
unary.fixed = activationFixed<UnaryParams>();
