/**
 * QDQ ONNX export (DESIGN.md §6): int8 weights -> DequantizeLinear (per tensor, or per output
 * channel on axis 0), the device bias as int32 -> DequantizeLinear at scale s_in * s_w, and a
 * QuantizeLinear/DequantizeLinear pair with a power-of-2 scale and zero point 0 on every stored
 * tensor (uint8 where unsigned). Relu/Clip nodes are kept with the PACT2 clip as their bounds
 * (intersected with a Clip's own where the spec keeps them: the device then saturates at both).
 * This is what ONNX Runtime runs and what TIDL >= 9.1 imports with prequantized_model=1.
 *
 * Rounding differs at exact ties: ONNX QuantizeLinear rounds half to even, the device rounds
 * half away from zero (float-to-fixed) or half up (its requantizing shift). Deep nets amplify
 * those one-step differences, and bias calibration has tuned the biases to the device's. With
 * `rounding: 'device'` the model rounds ties up as the device does, for running in ONNX Runtime:
 * each bias gains half a unit of its accumulator (int32 2b+1 at scale s_in*s_w/2), which moves
 * every tie of the layer just above the half and nothing else; and each Q/DQ pair after exact
 * element-wise arithmetic (Add, Sub, Mul, Concat, max pooling, moves) gets a quarter of its input
 * grid added before QuantizeLinear. Average pooling and table activations stay as ONNX computes
 * them. The default `'onnx'` form is the one TIDL imports (bias scale exactly s_in*s_w).
 * 16-bit tensors use Microsoft's QuantizeLinear/DequantizeLinear (int16/uint16) so that the model
 * stays at opset 13/14.
 */
import { cloneGraph, consumers, tensor, type Graph, type Node } from '../graph/ir.js';
import { encodeModel } from '../onnx/encode.js';
import { upgradeOpset } from '../onnx/opset.js';
import type { CalibrationState } from '../quant/calibrate.js';
import { deviceBias, type QuantSpec, type TensorQ } from '../device/spec.js';
import type { QuantizedWeights } from '../quant/weights.js';
import { finishEdits, freshName, holdsFloats, pact2Bounds, setClipBounds, staticIO, uniqueNodeNames } from './common.js';

function zeroPoint(q: TensorQ) {
  const dtype = q.bits === 16 ? (q.signed ? 'int16' : 'uint16') : q.signed ? 'int8' : 'uint8';
  return tensor(dtype, [], [0]);
}

export type QdqRounding = 'onnx' | 'device';

/** Single-input ops and exact arithmetic whose float result lies on the grid of their inputs. */
const ON_INPUT_GRID = new Set([
  'Add', 'Sub', 'Concat', 'MaxPool', 'Relu', 'Clip', 'Reshape', 'Flatten', 'Transpose', 'Squeeze', 'Unsqueeze', 'Slice', 'Split', 'Identity',
]);
/** A float32 value and a quarter of its grid must stay apart: at most this many grid steps per output step. */
const MAX_GRID_RATIO = { 8: 2 ** 14, 16: 2 ** 6 } as const;

export function exportQdq(state: CalibrationState, spec: QuantSpec, weights: Map<string, QuantizedWeights>, rounding: QdqRounding = 'onnx'): Uint8Array {
  const g: Graph = cloneGraph(state.graph);
  const inf = state.inferred;
  const target = Math.max(g.opset, g.nodes.some((n) => n.op === 'HardSwish') ? 14 : 13);
  upgradeOpset(g, target, (t) => inf.values.get(t)?.shape.length ?? 0);
  staticIO(g, inf);
  const added: Node[] = [];
  // The Q/DQ nodes join the graph at the end: the names they take are reserved meanwhile.
  const reserved = new Set<string>();
  const fresh = (base: string) => {
    const name = freshName(g, base, reserved);
    reserved.add(name);
    return name;
  };
  const dq = (input: string, scale: number[], zp: ReturnType<typeof zeroPoint>, out: string, axis?: number, sixteen = false): Node => {
    const s = fresh(`${out}_scale`);
    g.initializers.set(s, tensor('float32', scale.length === 1 ? [] : [scale.length], scale));
    const z = fresh(`${out}_zero_point`);
    g.initializers.set(z, scale.length === 1 ? zp : tensor(zp.dtype, [scale.length], new Array(scale.length).fill(0)));
    return {
      name: `${out}_DequantizeLinear`, op: 'DequantizeLinear', domain: sixteen ? 'com.microsoft' : '', inputs: [input, s, z], outputs: [out],
      attrs: axis === undefined ? {} : { axis: { type: 'int', value: axis } },
    };
  };

  // Weights and biases.
  for (const l of state.layers) {
    const node = g.nodes.find((n) => n.name === l.node.name)!;
    const qw = weights.get(l.node.name)!;
    const sixteen = l.bits === 16;
    const perChannel = qw.scaleLog2.length > 1;
    const wq = fresh(`${node.inputs[1]}_quantized`);
    g.initializers.set(wq, { dtype: sixteen ? 'int16' : 'int8', dims: inf.values.get(l.node.inputs[1])!.shape, data: qw.data });
    // Layers sharing a weight initializer each get their own (their scales may differ).
    const wf = fresh(`${node.inputs[1]}_dequantized`);
    added.push(dq(wq, qw.scaleLog2.map((e) => 2 ** -e), tensor(sixteen ? 'int16' : 'int8', [], [0]), wf, perChannel ? 0 : undefined, sixteen));
    const inQ = spec.tensors[l.input];
    let biasInt = Array.from(l.bias, (b, c) => deviceBias(b, inQ.scaleLog2, qw.scaleLog2[perChannel ? c : 0], l.bits, spec.biasMode, inQ.signed).value);
    let biasScales = perChannel ? qw.scaleLog2.map((e) => 2 ** -(inQ.scaleLog2 + e)) : [2 ** -(inQ.scaleLog2 + qw.scaleLog2[0])];
    if (rounding === 'device' && biasInt.every((v) => Math.abs(2 * v + 1) < 2 ** 31)) {
      biasInt = biasInt.map((v) => 2 * v + 1);
      biasScales = biasScales.map((x) => x / 2);
    }
    const bq = fresh(`${l.node.name}_bias_quantized`);
    g.initializers.set(bq, tensor('int32', [l.channels], biasInt));
    const bf = fresh(`${l.node.name}_bias_dequantized`);
    added.push(dq(bq, biasScales, tensor('int32', [], [0]), bf, perChannel ? 0 : undefined));
    if (node.op === 'MatMul' && inf.values.get(node.inputs[0])!.shape.length !== 2) {
      // Gemm takes 2-D inputs only: a batched A keeps its MatMul, and the bias is added after it.
      const product = fresh(`${node.outputs[0]}_product`);
      added.push({ name: `${node.name}_bias`, op: 'Add', domain: '', inputs: [product, bf], outputs: [node.outputs[0]], attrs: {} });
      node.inputs = [node.inputs[0], wf];
      node.outputs = [product];
      continue;
    }
    if (node.op === 'MatMul') {
      node.op = 'Gemm';
      node.attrs = {};
    }
    node.inputs = [node.inputs[0], wf, bf];
  }

  // Device rounding after exact element-wise arithmetic: the offset each point's QuantizeLinear
  // gets, from the grid of its producer's float result (read before the edits below).
  const tieOffsets = rounding === 'device' ? deviceTieOffsets(g, state.placement.points, spec) : new Map<string, number>();

  // Activations keep their op with the PACT2 bounds; every stored tensor gets a Q/DQ pair, but for
  // the outputs of float nodes that only float nodes (or the model's caller) read.
  const readers = consumers(g);
  const inFloat = (p: string) => {
    const producer = g.nodes.find((n) => n.outputs.includes(p));
    return !!producer && state.floatNodes.has(producer.name) && (readers.get(p) ?? []).every((n) => state.floatNodes.has(n.name));
  };
  for (const p of state.placement.points) {
    if (inFloat(p) || !holdsFloats(inf, p)) continue;
    const q = spec.tensors[p];
    const producer = g.nodes.find((n) => n.outputs.includes(p));
    if (producer?.op === 'Clip') setClipBounds(g, producer, pact2Bounds(g, producer, q, !!spec.keepClipBounds));
    const isInput = !producer;
    const src = isInput ? p : fresh(`${p}_float`);
    let qIn = src;
    const offset = tieOffsets.get(p);
    if (offset !== undefined) {
      const c = fresh(`${p}_tie_offset`);
      g.initializers.set(c, tensor('float32', [], [offset]));
      qIn = fresh(`${p}_ties_up`);
      added.push({ name: `${p}_TiesUp`, op: 'Add', domain: '', inputs: [src, c], outputs: [qIn], attrs: {} });
    }
    const mid = fresh(`${p}_quantized`);
    const out = isInput ? fresh(`${p}_dequantized`) : p;
    reserved.add(out);
    if (producer) producer.outputs = producer.outputs.map((o) => (o === p ? src : o));
    else for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === p ? out : i));
    const s = fresh(`${p}_scale`);
    g.initializers.set(s, tensor('float32', [], [2 ** -q.scaleLog2]));
    const z = fresh(`${p}_zero_point`);
    g.initializers.set(z, zeroPoint(q));
    const domain = q.bits === 16 ? 'com.microsoft' : '';
    added.push(
      { name: `${p}_QuantizeLinear`, op: 'QuantizeLinear', domain, inputs: [qIn, s, z], outputs: [mid], attrs: {} },
      { name: `${p}_DequantizeLinear`, op: 'DequantizeLinear', domain, inputs: [mid, s, z], outputs: [out], attrs: {} },
    );
  }
  if (added.some((n) => n.domain === 'com.microsoft') && !g.extraOpsets.some((o) => o.domain === 'com.microsoft')) {
    g.extraOpsets.push({ domain: 'com.microsoft', version: 1 });
  }
  uniqueNodeNames(g, added);
  g.nodes = [...added, ...g.nodes];
  finishEdits(g);
  return encodeModel(g, { producer: 'p2calib' });
}

/**
 * For each point produced by exact element-wise arithmetic on quantized tensors, a quarter of the
 * grid its float values lie on, where that grid is finer than the point's step (so ties exist):
 * added before QuantizeLinear, it turns every tie upward and changes no other value.
 */
function deviceTieOffsets(g: Graph, points: readonly string[], spec: QuantSpec): Map<string, number> {
  const isPoint = new Set(points);
  const producers = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const stepOf = (t: string) => 2 ** -spec.tensors[t].scaleLog2;
  const gridOfNode = (n: Node): number | undefined => {
    const grids = n.inputs.filter((i) => i && !g.initializers.has(i)).map(gridOf);
    if (!grids.length || grids.some((x) => x === undefined)) return undefined;
    if (n.op === 'Mul') return (grids as number[]).reduce((a, b) => a * b, 1);
    return ON_INPUT_GRID.has(n.op) ? Math.min(...(grids as number[])) : undefined;
  };
  const gridOf = (t: string): number | undefined => {
    if (isPoint.has(t)) return stepOf(t);
    const n = producers.get(t);
    return n && gridOfNode(n);
  };
  const offsets = new Map<string, number>();
  for (const p of points) {
    const n = producers.get(p);
    const grid = n && gridOfNode(n);
    const ratio = grid === undefined ? 0 : stepOf(p) / grid;
    if (ratio > 1 && ratio <= MAX_GRID_RATIO[spec.tensors[p].bits]) offsets.set(p, grid! / 4);
  }
  return offsets;
}
