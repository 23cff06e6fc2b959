/**
 * Calibrated float ONNX (the devkit's export form): the folded float model with calibrated
 * weights (the device's weights, dequantized: exact on the power-of-2 grid, so TIDL re-quantizes
 * them to the same integers) and calibrated biases, every Relu/Clip replaced by a Clip with its
 * PACT2 power-of-2 bounds, and a PACT2 Clip after every other stored tensor.
 */
import { cloneGraph, tensor, type Graph, type Node } from '../graph/ir.js';
import { encodeModel } from '../onnx/encode.js';
import type { CalibrationState } from '../quant/calibrate.js';
import { clipOf, type QuantSpec } from '../device/spec.js';
import type { QuantizedWeights } from '../quant/weights.js';
import { finishEdits, freshName, holdsFloats, pact2Bounds, setClipBounds, staticIO, uniqueNodeNames } from './common.js';

export function exportCalibrated(state: CalibrationState, spec: QuantSpec, weights: Map<string, QuantizedWeights>): Uint8Array {
  const g: Graph = cloneGraph(state.graph);
  staticIO(g, state.inferred);
  for (const l of state.layers) {
    const node = g.nodes.find((n) => n.name === l.node.name)!;
    const qw = weights.get(l.node.name)!;
    const perChannel = qw.scaleLog2.length > 1;
    const w = tensor('float32', state.inferred.values.get(l.node.inputs[1])!.shape);
    for (let i = 0; i < w.data.length; i++) w.data[i] = qw.data[i] * 2 ** -qw.scaleLog2[perChannel ? l.analysis.layout.channelOf(i) : 0];
    const wName = freshName(g, `${node.inputs[1]}_calibrated`);
    g.initializers.set(wName, w);
    const bName = freshName(g, `${l.node.name}_bias_calibrated`);
    g.initializers.set(bName, tensor('float32', [l.channels], l.bias));
    if (node.op === 'MatMul' && state.inferred.values.get(node.inputs[0])!.shape.length !== 2) {
      // Gemm takes 2-D inputs only: a batched A keeps its MatMul, and the bias is added after it.
      const product = freshName(g, `${node.outputs[0]}_product`);
      g.nodes.push({ name: `${node.name}_bias`, op: 'Add', domain: '', inputs: [product, bName], outputs: [node.outputs[0]], attrs: {} });
      node.inputs = [node.inputs[0], wName];
      node.outputs = [product];
      continue;
    }
    node.inputs = [node.inputs[0], wName, bName];
    if (node.op === 'MatMul') {
      node.op = 'Gemm';
      node.attrs = {};
    }
  }
  const added: Node[] = [];
  for (const p of state.placement.points) {
    if (!holdsFloats(state.inferred, p)) continue;
    const bounds = clipOf(spec.tensors[p]);
    const producer = g.nodes.find((n) => n.outputs.includes(p));
    if (producer && state.placement.activations.has(p)) {
      setClipBounds(g, producer, pact2Bounds(g, producer, spec.tensors[p], !!spec.keepClipBounds));
      producer.op = 'Clip';
      continue;
    }
    const clip: Node = { name: freshName(g, `${p}_pact2`), op: 'Clip', domain: '', inputs: [], outputs: [], attrs: {} };
    if (producer) {
      const src = freshName(g, `${p}_unclipped`);
      producer.outputs = producer.outputs.map((o) => (o === p ? src : o));
      clip.inputs = [src];
      clip.outputs = [p];
    } else {
      const out = freshName(g, `${p}_pact2_out`);
      for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === p ? out : i));
      clip.inputs = [p];
      clip.outputs = [out];
    }
    setClipBounds(g, clip, bounds);
    added.push(clip);
  }
  uniqueNodeNames(g, added);
  g.nodes = [...added, ...g.nodes];
  finishEdits(g);
  return encodeModel(g, { producer: 'p2calib' });
}
