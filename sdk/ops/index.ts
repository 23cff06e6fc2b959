/** The op registry: op type -> the module that holds its whole behaviour. */
import type { Node } from '../graph/ir.js';
import { batchNorm } from './batchnorm.js';
import { binary, where } from './binary.js';
import { clip } from './clip.js';
import { concat } from './concat.js';
import { cast, constant, constantOfShape, expand, range, shape } from './constant.js';
import { conv } from './conv.js';
import { convTranspose } from './conv-transpose.js';
import { gather } from './gather.js';
import { gemm } from './gemm.js';
import { matmul } from './matmul.js';
import type { Clip, OpModule, ValueMeta, WeightFacts } from './op.js';
import { pad } from './pad.js';
import { globalPool, pool } from './pool.js';
import { dequantizeLinear, qlinearAdd, qlinearConv, qlinearGlobalAveragePool, qlinearMatMul, quantizeLinear } from './qlinear.js';
import { reduce } from './reduce.js';
import { reshape } from './reshape.js';
import { resize } from './resize.js';
import { slice } from './slice.js';
import { softmax } from './softmax.js';
import { split } from './split.js';
import { transpose } from './transpose.js';
import { unary } from './unary.js';

const MODULES: OpModule<any>[] = [
  batchNorm, binary, where, clip, concat, cast, constant, constantOfShape, expand, range, shape, conv, convTranspose,
  gather, gemm, matmul, pad, pool, globalPool, dequantizeLinear, quantizeLinear, qlinearConv, qlinearMatMul,
  qlinearAdd, qlinearGlobalAveragePool, reduce, reshape, resize, slice, softmax, split, transpose, unary,
];

const REGISTRY = new Map<string, OpModule<any>>();
for (const m of MODULES) for (const op of m.ops) REGISTRY.set(op, m);

export function opKey(node: Pick<Node, 'op' | 'domain'>): string {
  return node.domain ? `${node.domain}:${node.op}` : node.op;
}

export function opModule(node: Pick<Node, 'op' | 'domain'>): OpModule<any> | undefined {
  return REGISTRY.get(opKey(node));
}

/** Every op module, once each. */
export function opModules(): readonly OpModule<unknown>[] {
  return MODULES;
}

export function supportedOps(): string[] {
  return [...REGISTRY.keys()].sort();
}

/** The weight facts of a weight layer's op (Conv, ConvTranspose, Gemm, MatMul); undefined for others. */
export function weightFacts(node: Pick<Node, 'op' | 'domain'>): WeightFacts<unknown> | undefined {
  return opModule(node)?.weights;
}

/** The op types of weight layers, for messages. */
export function weightOps(): string[] {
  return MODULES.filter((m) => m.weights).flatMap((m) => m.ops);
}

/** One MMA layer on the device: a weight op whose module accepts its operands (constant weights). */
export function isWeightLayer(node: Node, params: unknown, inputs: readonly (ValueMeta | undefined)[]): boolean {
  const w = weightFacts(node);
  if (!w) return false;
  return w.isLayer ? w.isLayer(params, inputs) : !!inputs[1]?.value;
}

/** A module's fact that may depend on the node. */
function nodeFact(fact: true | ((node: Node) => boolean) | undefined, node: Node): boolean {
  return typeof fact === 'function' ? fact(node) : !!fact;
}

/** The node's outputs hold only values of its first input (they take its format). */
export function movesData(node: Node): boolean {
  return nodeFact(opModule(node)?.movesData, node);
}

/** TIDL can change precision at the node, weight layers aside (mixed precision's groups end there). */
export function changesPrecision(node: Node): boolean {
  return nodeFact(opModule(node)?.changesPrecision, node);
}

/** The clip a Relu/Clip node applies as an activation; undefined for other nodes. */
export function activationClip(node: Node, params: unknown): Clip | undefined {
  return opModule(node)?.clip?.(params);
}

/**
 * The rule for fusing activations: a Relu/Clip that is the only reader of `node`'s first output,
 * when that output is not a model output, fuses into `node` (the device saturates there; the
 * tensor before the activation never exists apart). `paramsOf` gives a node's compiled params.
 */
export function fusedActivation(
  node: Node, readers: Map<string, Node[]>, graphOutputs: Set<string>, paramsOf: (n: Node) => unknown,
): { node: Node; clip: Clip } | undefined {
  const out = node.outputs[0];
  const next = readers.get(out) ?? [];
  if (next.length !== 1 || graphOutputs.has(out) || next[0].inputs[0] !== out) return undefined;
  const clip = activationClip(next[0], paramsOf(next[0]));
  return clip && { node: next[0], clip };
}
