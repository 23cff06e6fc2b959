/** TensorProto <-> IR Tensor, for every element type CNN exporters write. */
import { fail, P2Error } from '../errors.js';
import { DTYPE_BYTES, allocData, numel, type DType, type Tensor } from '../graph/ir.js';

/** TensorProto.DataType code -> IR dtype (float16/bfloat16 widen to float32 on reading). */
const FROM_ONNX: Record<number, DType> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float32', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'float32',
};
const TO_ONNX: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, string: 8, bool: 9,
  float64: 11, uint32: 12, uint64: 13,
};
const FLOAT16 = 10;
const BFLOAT16 = 16;
const RAW_BYTES: Record<number, number> = { 10: 2, 16: 2 };

/** No single tensor in a CNN deployment model comes near this; beyond it the file is corrupt. */
export const MAX_TENSOR_ELEMENTS = 1 << 28;

export function dtypeFromOnnx(code: number, what: string): DType {
  const t = FROM_ONNX[code];
  if (!t) fail('UNSUPPORTED', `${what}: element type ${code} is not supported (float, int and bool types are)`);
  return t;
}

export function dtypeToOnnx(dtype: DType): number {
  return TO_ONNX[dtype];
}

/** Anything protobufjs returns for an int64: number or Long. */
export type Int64 = number | { toNumber(): number };
export function int64(v: Int64 | null | undefined): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function checkDims(dims: number[], what: string): void {
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) fail('BAD_MODEL', `${what}: invalid dimension ${d} in [${dims.join(',')}]`);
  }
  if (numel(dims) > MAX_TENSOR_ELEMENTS) {
    fail('TOO_LARGE', `${what}: [${dims.join(',')}] has ${numel(dims)} elements, beyond the limit of ${MAX_TENSOR_ELEMENTS}`);
  }
}

export interface TensorProtoLike {
  name?: string;
  dims?: Int64[];
  data_type?: number;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: Int64[];
  double_data?: number[];
  uint64_data?: Int64[];
  string_data?: Uint8Array[];
  raw_data?: Uint8Array;
  data_location?: number;
  external_data?: { key?: string; value?: string }[];
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function readRaw(code: number, dtype: DType, raw: Uint8Array, n: number, what: string) {
  const width = RAW_BYTES[code] ?? DTYPE_BYTES[dtype];
  if (raw.byteLength !== n * width) {
    fail('BAD_MODEL', `${what}: raw_data holds ${raw.byteLength} bytes but its dims need ${n * width}`);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = allocData(dtype, n);
  switch (code) {
    case FLOAT16: for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true)); break;
    case BFLOAT16: for (let i = 0; i < n; i++) out[i] = new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0]; break;
    case 7: for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(8 * i, true)); break;
    case 13: for (let i = 0; i < n; i++) out[i] = Number(view.getBigUint64(8 * i, true)); break;
    default: {
      // Copy through bytes so that unaligned raw_data views are fine.
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(raw);
    }
  }
  return out;
}

/**
 * Decode one TensorProto. `external` resolves tensors stored outside the model file
 * (data_location = EXTERNAL); without it such a tensor is an error naming the file it needs.
 */
export function decodeTensor(
  t: TensorProtoLike,
  what: string,
  external?: (location: string) => Uint8Array | undefined,
): Tensor {
  const code = t.data_type ?? 0;
  const dtype = dtypeFromOnnx(code, what);
  const dims = (t.dims ?? []).map(int64);
  checkDims(dims, what);
  const n = numel(dims);
  if (dtype === 'string') fail('UNSUPPORTED', `${what}: string tensors are not supported`);

  if (t.data_location === 1) {
    const entries = new Map((t.external_data ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = entries.get('location') ?? '';
    let file: Uint8Array | undefined;
    try {
      file = external?.(location);
    } catch (e) {
      if (e instanceof P2Error) fail('EXTERNAL_DATA', `${what}: external file "${location}": ${e.message}`);
      throw e;
    }
    if (!file) fail('EXTERNAL_DATA', `${what}: data is stored in external file "${location}", which was not found next to the model`);
    const offset = Number(entries.get('offset') ?? 0);
    const length = entries.has('length') ? Number(entries.get('length')) : file.byteLength - offset;
    if (![offset, length].every((v) => Number.isSafeInteger(v) && v >= 0)) {
      fail('EXTERNAL_DATA', `${what}: invalid offset "${entries.get('offset')}" or length "${entries.get('length')}" in external file "${location}"`);
    }
    if (offset + length > file.byteLength) fail('EXTERNAL_DATA', `${what}: external file "${location}" is shorter than the tensor needs`);
    return { dtype, dims, data: readRaw(code, dtype, file.subarray(offset, offset + length), n, what) };
  }
  if (t.raw_data && t.raw_data.byteLength > 0) return { dtype, dims, data: readRaw(code, dtype, t.raw_data, n, what) };

  let values: ArrayLike<number>;
  if (dtype === 'float32' && code === 1) values = t.float_data ?? [];
  else if (dtype === 'float64') values = t.double_data ?? [];
  else if (dtype === 'int64') values = (t.int64_data ?? []).map(int64);
  else if (dtype === 'uint64' || dtype === 'uint32') values = (t.uint64_data ?? []).map(int64);
  else if (code === FLOAT16) values = (t.int32_data ?? []).map(halfToFloat);
  else values = t.int32_data ?? []; // int8/uint8/int16/uint16/int32/bool/bfloat16 bits
  if (code === BFLOAT16) values = Array.from(values, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
  if (values.length !== n) fail('BAD_MODEL', `${what}: holds ${values.length} values but its dims [${dims.join(',')}] need ${n}`);
  const data = allocData(dtype, n);
  data.set(values);
  return { dtype, dims, data };
}

/** Encode an IR tensor as a TensorProto object (always raw_data, little-endian). */
export function encodeTensor(name: string, t: Tensor): TensorProtoLike & { dims: number[] } {
  let raw: Uint8Array;
  if (t.dtype === 'int64' || t.dtype === 'uint64') {
    const out = new BigInt64Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) {
      // Saturate the float64 stand-ins for INT64_MAX/MIN.
      const v = Math.trunc(t.data[i]);
      out[i] = v >= 2 ** 63 ? 0x7fffffffffffffffn : v <= -(2 ** 63) ? -0x8000000000000000n : BigInt(v);
    }
    raw = new Uint8Array(out.buffer);
  } else {
    raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
  }
  return { name, dims: [...t.dims], data_type: dtypeToOnnx(t.dtype), raw_data: raw };
}
