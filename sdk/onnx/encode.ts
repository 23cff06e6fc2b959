/** Graph IR -> ONNX bytes. */
import type { AttrValue, Graph, Tensor, ValueInfo } from '../graph/ir.js';
import { ATTR, ModelProto } from './schema.js';
import { dtypeToOnnx, encodeTensor } from './tensor.js';

const utf8 = new TextEncoder();

function encodeAttr(name: string, a: AttrValue): Record<string, unknown> | undefined {
  switch (a.type) {
    case 'float': return { name, type: ATTR.FLOAT, f: a.value };
    case 'int': return { name, type: ATTR.INT, i: a.value };
    case 'string': return { name, type: ATTR.STRING, s: utf8.encode(a.value) };
    case 'tensor': return { name, type: ATTR.TENSOR, t: encodeTensor('', a.value) };
    case 'floats': return { name, type: ATTR.FLOATS, floats: a.value };
    case 'ints': return { name, type: ATTR.INTS, ints: a.value };
    case 'strings': return { name, type: ATTR.STRINGS, strings: a.value.map((s) => utf8.encode(s)) };
    case 'graph': return { name, type: ATTR.GRAPH, g: a.value };
  }
}

function encodeValueInfo(v: ValueInfo) {
  return {
    name: v.name,
    type: {
      tensor_type: {
        elem_type: dtypeToOnnx(v.dtype),
        shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

export interface EncodeOptions {
  producer?: string;
  /** Extra value_info entries (e.g. inferred intermediate shapes) to record. */
  valueInfo?: ValueInfo[];
}

export function encodeModel(graph: Graph, options: EncodeOptions = {}): Uint8Array {
  const initializer = [...graph.initializers].map(([name, t]: [string, Tensor]) => encodeTensor(name, t));
  const msg = {
    ir_version: graph.irVersion,
    producer_name: options.producer ?? graph.producer,
    opset_import: [{ domain: '', version: graph.opset }, ...graph.extraOpsets],
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) => ({
        name: n.name,
        op_type: n.op,
        domain: n.domain || undefined,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => encodeAttr(k, a)).filter((a) => a !== undefined),
      })),
      initializer,
      input: graph.inputs.map(encodeValueInfo),
      output: graph.outputs.map(encodeValueInfo),
      value_info: (options.valueInfo ?? []).map(encodeValueInfo),
    },
  };
  return ModelProto.encode(ModelProto.fromObject(msg)).finish();
}
