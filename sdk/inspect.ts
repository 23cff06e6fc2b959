/** A model's summary for `p2calib inspect`: interface, op counts, parameters, unsupported ops. */
import { P2Error } from './errors.js';
import { unsupportedNodes } from './passes/infer.js';
import { attrTensor, isFloat, type Dim, type Graph } from './graph/ir.js';
import { loadModel, type LoadOptions, type Model } from './model.js';
import { CalibrationState, resolveOptions } from './quant/calibrate.js';
import { decodeModel } from './onnx/decode.js';
import { checkParameters } from './passes/validate.js';

export interface InspectReport {
  inputs: { name: string; shape: Dim[]; type: string }[];
  outputs: { name: string; shape: Dim[]; type: string }[];
  ops: Record<string, number>;
  params: number;
  unsupported: { op: string; node: string }[];
  /** Nodes of the prepared graph without documented integer arithmetic: in fixed point they run
   *  as float fallback (dequantize, float reference, requantize). Absent when shapes are unknown. */
  fallback?: { op: string; node: string }[];
  opset: number;
  producer: string;
  /** Planned activation arena at these input shapes; absent when shapes are unknown. */
  arenaBytes?: number;
  /** Why shapes could not be inferred, when they could not. */
  shapeNote?: string;
}

/** Learned parameters: float tensors held by initializers and Constant nodes. */
function countParams(g: Graph): number {
  let n = 0;
  for (const t of g.initializers.values()) if (isFloat(t.dtype) || t.dtype === 'int8' || t.dtype === 'uint8') n += t.data.length;
  for (const node of g.nodes) {
    const t = node.op === 'Constant' ? attrTensor(node, 'value') : undefined;
    if (t && isFloat(t.dtype)) n += t.data.length;
  }
  return n;
}

/** The nodes a fixed-point run of the model computes as float fallback, whatever the calibration. */
export function fallbackNodes(model: Model) {
  const { graph, inferred } = model.prepared(1);
  return new CalibrationState(graph, inferred, resolveOptions({})).formats().fallbacks;
}

export async function inspectModel(bytes: Uint8Array, options: LoadOptions = {}): Promise<InspectReport> {
  const g = decodeModel(bytes, options);
  const ops: Record<string, number> = {};
  for (const n of g.nodes) ops[n.op] = (ops[n.op] ?? 0) + 1;
  const report: InspectReport = {
    inputs: g.inputs.map((v) => ({ name: v.name, shape: v.dims, type: v.dtype })),
    outputs: g.outputs.map((v) => ({ name: v.name, shape: v.dims, type: v.dtype })),
    ops,
    params: countParams(g),
    unsupported: unsupportedNodes(g),
    opset: g.opset,
    producer: g.producer,
  };
  if (report.unsupported.length) {
    // Not loaded: the numbers a load would refuse are still checked, on the initializers.
    checkParameters(g, (name) => g.initializers.get(name));
    return { ...report, shapeNote: 'shapes not inferred: the model has unsupported ops' };
  }
  try {
    const model = await loadModel(bytes, options);
    report.inputs = model.inputs.map((v) => ({ name: v.name, shape: v.shape, type: v.dtype }));
    report.outputs = model.outputs.map((v) => ({ name: v.name, shape: v.shape, type: v.dtype }));
    report.arenaBytes = await model.arenaBytes();
    report.fallback = fallbackNodes(model).map((n) => ({ op: n.op, node: n.name }));
  } catch (e) {
    if (!(e instanceof P2Error) || e.code !== 'SHAPE' || options.inputShape) throw e;
    report.shapeNote = e.message;
  }
  return report;
}
