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
import type { OpModule } from './op.js';
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

export function supportedOps(): string[] {
  return [...REGISTRY.keys()].sort();
}
