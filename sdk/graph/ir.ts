/**
 * The graph IR every stage works on. It is deliberately plain data: the ONNX reader builds it,
 * transforms rewrite it, the executors compile it, and the writer turns it back into ONNX.
 */

export type DType =
  | 'float32' | 'float64' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32'
  | 'int64' | 'uint64' | 'bool' | 'string';

/**
 * int64/uint64 values are held as float64 numbers: exact up to 2^53, which covers every shape,
 * index and axis a CNN graph carries; larger sentinels (INT64_MAX in Slice ends) saturate.
 * float16 and bfloat16 data is widened to float32 on reading.
 */
export type TensorData =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

export type Dim = number | string;

export interface ValueInfo {
  name: string;
  dtype: DType;
  /** Declared dims; strings are symbolic (dynamic) dims. */
  dims: Dim[];
}

export type AttrValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: Tensor }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'graph'; value: unknown };

export interface Node {
  name: string;
  op: string;
  domain: string;
  /** '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  /** Runtime inputs only (initializers listed as inputs by old exporters are removed). */
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Version of the default ('' / 'ai.onnx') domain. */
  opset: number;
  /** Other imported domains, kept for writing back. */
  extraOpsets: { domain: string; version: number }[];
  irVersion: number;
  producer: string;
}

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4, float64: 8, int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4,
  int64: 8, uint64: 8, bool: 1, string: 0,
};

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function allocData(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': case 'int64': case 'uint64': return new Float64Array(n);
    case 'int8': return new Int8Array(n);
    case 'uint8': case 'bool': return new Uint8Array(n);
    case 'int16': return new Int16Array(n);
    case 'uint16': return new Uint16Array(n);
    case 'int32': return new Int32Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'string': return new Float64Array(0);
  }
}

export function tensor(dtype: DType, dims: number[], values?: ArrayLike<number>): Tensor {
  const data = allocData(dtype, numel(dims));
  if (values) data.set(values);
  return { dtype, dims: [...dims], data };
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

export function attrNumber(node: Node, name: string, fallback: number): number;
export function attrNumber(node: Node, name: string): number | undefined;
export function attrNumber(node: Node, name: string, fallback?: number): number | undefined {
  const a = node.attrs[name];
  if (!a) return fallback;
  if (a.type === 'int' || a.type === 'float') return a.value;
  return fallback;
}

export function attrNumbers(node: Node, name: string): number[] | undefined {
  const a = node.attrs[name];
  if (!a) return undefined;
  if (a.type === 'ints' || a.type === 'floats') return a.value;
  if (a.type === 'int' || a.type === 'float') return [a.value];
  return undefined;
}

export function attrString(node: Node, name: string, fallback: string): string {
  const a = node.attrs[name];
  return a && a.type === 'string' ? a.value : fallback;
}

export function attrTensor(node: Node, name: string): Tensor | undefined {
  const a = node.attrs[name];
  return a && a.type === 'tensor' ? a.value : undefined;
}

/** Map from tensor name to the node producing it. */
export function producers(graph: Graph): Map<string, Node> {
  const m = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o) m.set(o, n);
  return m;
}

/** Map from tensor name to the nodes reading it. */
export function consumers(graph: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of graph.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      let list = m.get(i);
      if (!list) m.set(i, (list = []));
      // A node reading a tensor twice is listed once (its inputs are visited together).
      if (list[list.length - 1] !== n) list.push(n);
    }
  }
  return m;
}

export function cloneGraph(g: Graph): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
    inputs: g.inputs.map((v) => ({ ...v, dims: [...v.dims] })),
    outputs: g.outputs.map((v) => ({ ...v, dims: [...v.dims] })),
    initializers: new Map(g.initializers),
    extraOpsets: [...g.extraOpsets],
  };
}
