/**
 * Numbers no result survives, refused at load with the tensor, the value and where it sits: NaN
 * in any float constant; weights and biases (Conv, ConvTranspose, Gemm, MatMul and the
 * BatchNormalization parameters folded into them) that are infinite, beyond MAX_PARAMETER or
 * empty; a BatchNormalization whose variance + epsilon is not positive. Infinity elsewhere is
 * legitimate (an unbounded Clip, a mask), and so is float32's largest value.
 */
import { fail } from '../errors.js';
import type { Inferred } from './infer.js';
import { attrNumber, attrTensor, isFloat, type Graph, type Node, type Tensor } from '../graph/ir.js';
import { weightFacts } from '../ops/index.js';

/** Weights and biases of this magnitude (2^64, 1.8e19) are no trained model's; far below, float32
 *  products already overflow and no power-of-2 format holds them. */
export const MAX_PARAMETER = 2 ** 64;

/** "[0,2,1,1]": the position of flat index i in a tensor of these dims. */
function position(dims: readonly number[], i: number): string {
  const at = dims.map(() => 0);
  for (let k = dims.length - 1, r = i; k >= 0; k--) {
    at[k] = r % dims[k];
    r = Math.floor(r / dims[k]);
  }
  return `[${at}]`;
}

function firstIndex(t: Tensor, bad: (v: number) => boolean): number {
  const d = t.data;
  for (let i = 0; i < d.length; i++) if (bad(d[i] as number)) return i;
  return -1;
}

function refuseNaN(t: Tensor, what: string): void {
  if (!isFloat(t.dtype)) return;
  const i = firstIndex(t, (v) => v !== v);
  if (i >= 0) fail('BAD_MODEL', `${what} holds NaN at ${position(t.dims, i)}`);
}

const describe = (node: Node) => `${node.op} "${node.name}"`;
/** Float32 values at float32's precision (3e+38, not 3.0000000054977558e+38). */
const show = (v: number) => String(Number.isFinite(v) ? Number(v.toPrecision(7)) : v);

/** A tensor's constant value, when it has one. */
export type ValueOf = (name: string) => Tensor | undefined;

/** A weight layer's constant operands: finite, below MAX_PARAMETER, not empty. */
function checkOperands(node: Node, valueOf: ValueOf, note = ''): void {
  node.inputs.forEach((name, k) => {
    const t = name ? valueOf(name) : undefined;
    if (!t || !isFloat(t.dtype)) return;
    const role = `${k === 2 ? 'bias' : 'weight'} "${name}"${note}`;
    if (!t.data.length) fail('BAD_MODEL', `${describe(node)}: ${role} has no elements (dims [${t.dims}])`);
    const i = firstIndex(t, (v) => !(Math.abs(v) < MAX_PARAMETER));
    if (i >= 0) {
      fail('BAD_MODEL', `${describe(node)}: ${role} holds ${show(t.data[i] as number)} at ${position(t.dims, i)}; weights and biases must be finite and below 2^64 in magnitude`);
    }
  });
}

/** The decoded graph, with its constants computed (the first inference of prepareGraph), or only
 *  its initializers (inspect, for a model with unsupported ops). */
export function checkParameters(graph: Graph, valueOf: ValueOf): void {
  for (const [name, t] of graph.initializers) refuseNaN(t, `initializer "${name}"`);
  for (const node of graph.nodes) {
    if (node.op === 'Constant') {
      const t = attrTensor(node, 'value');
      if (t) refuseNaN(t, `${describe(node)}'s value`);
    } else if (weightFacts(node)) {
      checkOperands(node, valueOf);
    } else if (node.op === 'BatchNormalization') {
      const [, ...params] = node.inputs.map((n) => (n ? valueOf(n) : undefined));
      params.forEach((t, k) => {
        if (!t) return;
        const i = firstIndex(t, (v) => !Number.isFinite(v));
        if (i >= 0) fail('BAD_MODEL', `${describe(node)}: ${['scale', 'bias', 'mean', 'variance'][k]} "${node.inputs[k + 1]}" holds ${show(t.data[i] as number)} at ${position(t.dims, i)}`);
      });
      const variance = params[3];
      const eps = attrNumber(node, 'epsilon', 1e-5);
      const c = variance ? firstIndex(variance, (v) => !(v + eps > 0)) : -1;
      if (c >= 0) {
        fail('BAD_MODEL', `${describe(node)}: variance + epsilon is ${show((variance!.data[c] as number) + eps)} at channel ${c} (variance "${node.inputs[4]}" ${show(variance!.data[c] as number)}, epsilon ${show(eps)}); it must be positive`);
      }
    }
  }
}

/** The prepared graph: weights that BatchNormalization folding made overflow. */
export function checkFoldedWeights(graph: Graph, inferred: Inferred): void {
  for (const node of graph.nodes) if (weightFacts(node)) checkOperands(node, (n) => inferred.values.get(n)?.value, ' (with BatchNormalization folded in)');
}
