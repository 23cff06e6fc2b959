/** ONNX bytes -> graph IR. Same code in Node and browsers (protobufjs on a Uint8Array). */
import { fail, P2Error } from '../errors.js';
import type { AttrValue, Dim, Graph, Node, Tensor, ValueInfo } from '../graph/ir.js';
import { check, options as optionsOf } from '../guard.js';
import { ATTR, ModelProto } from './schema.js';
import { checkDims, decodeTensor, dtypeFromOnnx, int64, type Int64, type TensorProtoLike } from './tensor.js';

interface DimProto { dim_value?: Int64; dim_param?: string }
interface ValueInfoProto {
  name?: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: DimProto[] } } };
}
interface AttributeProto {
  name?: string; type?: number; f?: number; i?: Int64; s?: Uint8Array; t?: TensorProtoLike;
  g?: unknown; floats?: number[]; ints?: Int64[]; strings?: Uint8Array[]; ref_attr_name?: string;
}
interface NodeProto {
  input?: string[]; output?: string[]; name?: string; op_type?: string; domain?: string; attribute?: AttributeProto[];
}
interface GraphProto {
  node?: NodeProto[]; name?: string; initializer?: TensorProtoLike[];
  input?: ValueInfoProto[]; output?: ValueInfoProto[];
}
interface ModelProtoObj {
  ir_version?: Int64; opset_import?: { domain?: string; version?: Int64 }[]; producer_name?: string;
  graph?: GraphProto;
}

export interface DecodeOptions {
  /** Resolves external-data files (ONNX `location`) relative to the model. */
  externalData?: (location: string) => Uint8Array | undefined;
}

/** The opsets this reader and the op modules understand. */
export const MIN_OPSET = 7;
export const MAX_OPSET = 22;

const utf8 = new TextDecoder();

function parseModel(bytes: Uint8Array): ModelProtoObj {
  if (bytes.byteLength === 0) fail('NOT_ONNX', 'the file is empty, not an ONNX model');
  let msg: ModelProtoObj;
  try {
    msg = ModelProto.decode(bytes) as unknown as ModelProtoObj;
  } catch (e) {
    const text = String((e as Error)?.message ?? e);
    if (/index out of range/.test(text)) fail('TRUNCATED', `the ONNX file is truncated or corrupt (the protobuf ends early after ${bytes.byteLength} bytes)`);
    fail('NOT_ONNX', `not an ONNX model: the bytes are not a valid ONNX protobuf (${text.split('\n')[0]})`);
  }
  if (msg.graph == null || !has(msg, 'ir_version') || !msg.graph.node?.length) {
    fail('NOT_ONNX', 'not an ONNX model: no ir_version or no graph with nodes in the file');
  }
  return msg;
}

/** protobufjs leaves absent fields as prototype defaults (0, [], null): only own properties
 *  were in the file. */
const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const text = (b: unknown) => (b instanceof Uint8Array ? utf8.decode(b) : '');

function decodeAttr(a: AttributeProto, where: string): AttrValue | undefined {
  if (a.ref_attr_name) fail('UNSUPPORTED', `${where}: attribute "${a.name}" refers to a function attribute`);
  const tensorOf = (t: TensorProtoLike | undefined) => decodeTensor(t ?? {}, `${where} attribute ${a.name}`);
  switch (a.type) {
    case ATTR.FLOAT: return { type: 'float', value: a.f ?? 0 };
    case ATTR.INT: return { type: 'int', value: int64(a.i) };
    case ATTR.STRING: return { type: 'string', value: text(a.s) };
    case ATTR.TENSOR: return { type: 'tensor', value: tensorOf(a.t) };
    case ATTR.FLOATS: return { type: 'floats', value: [...(a.floats ?? [])] };
    case ATTR.INTS: return { type: 'ints', value: (a.ints ?? []).map(int64) };
    case ATTR.STRINGS: return { type: 'strings', value: (a.strings ?? []).map(text) };
    case ATTR.GRAPH: return { type: 'graph', value: a.g };
    default:
      // IR v1 files carry no type: infer from the field that is set.
      if (has(a, 't')) return { type: 'tensor', value: tensorOf(a.t) };
      if (a.ints?.length) return { type: 'ints', value: a.ints.map(int64) };
      if (a.floats?.length) return { type: 'floats', value: [...a.floats] };
      if (has(a, 's')) return { type: 'string', value: text(a.s) };
      if (has(a, 'i')) return { type: 'int', value: int64(a.i) };
      if (has(a, 'f')) return { type: 'float', value: a.f ?? 0 };
      return undefined;
  }
}

function decodeValueInfo(v: ValueInfoProto, what: string): ValueInfo {
  const name = v.name ?? '';
  const tt = v.type?.tensor_type;
  const dtype = tt?.elem_type ? dtypeFromOnnx(tt.elem_type, `${what} "${name}"`) : 'float32';
  if (dtype === 'string') fail('UNSUPPORTED', `${what} "${name}": string tensors are not supported`);
  // 0 and -1 are the usual stand-ins for a dynamic dim; other negative sizes are corrupt.
  const dims: Dim[] = (tt?.shape?.dim ?? []).map((d, i) => {
    const value = has(d, 'dim_value') ? int64(d.dim_value) : 0;
    if (value < -1 || !Number.isInteger(value)) fail('BAD_MODEL', `${what} "${name}": invalid dimension ${value}`);
    return value > 0 ? value : d.dim_param || `?${i}`;
  });
  return { name, dtype, dims };
}

export function decodeModel(bytes: Uint8Array, given?: DecodeOptions): Graph {
  check(bytes instanceof Uint8Array, 'loading a model', 'the model must be the bytes of an ONNX file (a Uint8Array)');
  const options = optionsOf(given, 'loading a model');
  check(options.externalData === undefined || typeof options.externalData === 'function', 'loading a model', 'externalData must be a function');
  const m = parseModel(bytes);
  const g = m.graph!;

  let opset = 0;
  const extraOpsets: { domain: string; version: number }[] = [];
  for (const o of m.opset_import ?? []) {
    const domain = o.domain ?? '';
    if (domain === '' || domain === 'ai.onnx') opset = int64(o.version);
    else extraOpsets.push({ domain, version: int64(o.version) });
  }
  if (opset === 0) opset = 1; // IR v3 files without an opset_import entry
  if (opset < MIN_OPSET || opset > MAX_OPSET) {
    fail('UNSUPPORTED', `the model uses ONNX opset ${opset}; p2calib reads opsets ${MIN_OPSET} to ${MAX_OPSET}`);
  }

  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) {
    const name = t.name ?? '';
    if (initializers.has(name)) fail('BAD_MODEL', `initializer "${name}" is defined twice`);
    try {
      initializers.set(name, decodeTensor(t, `initializer "${name}"`, options.externalData));
    } catch (e) {
      if (e instanceof P2Error) throw e;
      fail('BAD_MODEL', `initializer "${name}" is malformed`);
    }
  }

  const nodes: Node[] = (g.node ?? []).map((n, idx) => {
    const op = n.op_type ?? '';
    const name = n.name || `${op}_${idx}`;
    const attrs: Record<string, AttrValue> = {};
    for (const a of n.attribute ?? []) {
      const v = decodeAttr(a, `node "${name}" (${op})`);
      if (v && a.name) attrs[a.name] = v;
    }
    const domain = n.domain === 'ai.onnx' ? '' : n.domain ?? '';
    return { name, op, domain, inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs };
  });

  // Old PyTorch exports list every initializer as a graph input too; those are not runtime inputs.
  const inputs = (g.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map((v) => decodeValueInfo(v, 'graph input'));
  const outputs = (g.output ?? []).map((v) => decodeValueInfo(v, 'graph output'));
  if (!outputs.length) fail('BAD_MODEL', 'the graph has no outputs: nothing to compute');
  const seen = new Set<string>();
  for (const v of inputs) {
    if (seen.has(v.name)) fail('BAD_MODEL', `graph input "${v.name}" is listed twice`);
    seen.add(v.name);
    // Refused here, before anything is sized by them.
    checkDims(v.dims.filter((d): d is number => typeof d === 'number'), `graph input "${v.name}"`);
  }

  return {
    name: g.name ?? 'graph',
    nodes,
    inputs,
    outputs,
    initializers,
    opset,
    extraOpsets,
    irVersion: int64(m.ir_version),
    producer: m.producer_name ?? '',
  };
}
