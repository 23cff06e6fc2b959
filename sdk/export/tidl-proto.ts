/**
 * TIDL's quantization parameters file (edgeai-tidl-tools docs/quantization_proto.md): the
 * prototxt TIDL reads from `advanced_options:quant_params_proto_path` and, when every tensor has a
 * range and every bias its values, uses instead of calibrating again ("read mode"). The schema
 * below is the message layout that document specifies; the file is its protobuf text format.
 *
 * What p2calib writes, per stored tensor (one layer entry each, named by the ONNX tensor, typed by
 * the op that produces it; the model input is TIDL_DataLayer):
 * - outputs: the range its format fills, 0..(2^bits-1)/2^s unsigned or ±(2^(bits-1)-1)/2^s
 *   signed (symmetric, TIDL's only mode for this file): TIDL derives power-of-2 scales from the ranges only, and this
 *   range gives back p2calib's scale whether TIDL rounds the scale down or up to a power of 2.
 *   `scale` holds 2^scaleLog2 as well, for readers.
 * - weight layers: weights with the range ±(2^(bits-1)-1)/2^w and one scale per output channel
 *   group (one per tensor, or per channel in advanced-dw), and the calibrated float biases as
 *   `value` (size = channels) with their accumulator scales.
 * - the outputs of nodes kept in float are left out (TIDL runs them on the ARM cores).
 * - bit_depth: bytes per element (1 for 8-bit, 2 for 16-bit), as the file TIDL writes in its own
 *   write mode shows (the schema's default of 8 notwithstanding); element_type is TIDL's element
 *   type code (0 uint8, 1 int8, 2 uint16, 3 int16, 5 int32).
 */
import protobuf from 'protobufjs';
import { fail } from '../errors.js';
import type { CalibrationTable } from './table.js';

export const TIDL_QUANT_PROTO = `
syntax = "proto2";
package tidl_quant_params;
message TIDLNetQuantParams {
  optional int32 num_layers = 1;
  optional TidlQuantType quant_type = 2 [default = SYMMETRIC];
  optional TidlCalibType calib_type = 3 [default = PERTENSOR];
  repeated TidlLayerQuantParams layers = 4;
}
enum TidlQuantType { SYMMETRIC = 1; ASYMMETRIC = 2; }
enum TidlCalibType { PERTENSOR = 1; PERCHANNEL = 2; }
message TidlLayerQuantParams {
  optional string layer_name = 1;
  optional string layer_type = 2;
  optional uint32 bit_depth = 3 [default = 8];
  repeated TidlTensorQuantParams outputs = 4;
  repeated TidlTensorQuantParams weights = 5;
  repeated TidlTensorQuantParams bias = 6;
  repeated TidlTensorQuantParams slope = 7;
}
message TidlTensorQuantParams {
  optional float min = 1 [default = -3.4028234664e+38];
  optional float max = 2 [default = 3.4028234664e+38];
  optional uint32 size = 3;
  optional uint32 element_type = 4;
  repeated double scale = 5 [packed = true];
  repeated uint32 zero_point = 6 [packed = true];
  repeated double value = 7 [packed = true];
}
`;

let root: protobuf.Root | undefined;
/** The TIDLNetQuantParams message type, from the schema above. */
export function tidlQuantParamsType(): protobuf.Type {
  // Resolved at once: field types (enums, nested messages) are then known before any use.
  if (!root) {
    root = protobuf.parse(TIDL_QUANT_PROTO, { keepCase: true }).root;
    root.resolveAll();
  }
  return root.lookupType('tidl_quant_params.TIDLNetQuantParams');
}

/** TIDL layer types of the ONNX ops p2calib quantizes (the names TIDL's import gives them). */
const LAYER_TYPES: Record<string, string> = {
  Conv: 'TIDL_ConvolutionLayer', ConvTranspose: 'TIDL_Deconv2DLayer', Gemm: 'TIDL_InnerProductLayer', MatMul: 'TIDL_InnerProductLayer',
  Add: 'TIDL_EltWiseLayer', Sub: 'TIDL_EltWiseLayer', Mul: 'TIDL_EltWiseLayer', Max: 'TIDL_EltWiseLayer',
  Concat: 'TIDL_ConcatLayer', MaxPool: 'TIDL_PoolingLayer', AveragePool: 'TIDL_PoolingLayer', GlobalAveragePool: 'TIDL_PoolingLayer',
  GlobalMaxPool: 'TIDL_PoolingLayer', Relu: 'TIDL_ReLULayer', Clip: 'TIDL_ClipLayer', LeakyRelu: 'TIDL_ReLULayer', PRelu: 'TIDL_ReLULayer',
  Sigmoid: 'TIDL_SigmoidLayer', Tanh: 'TIDL_TanhLayer', Softmax: 'TIDL_SoftMaxLayer', BatchNormalization: 'TIDL_BatchNormLayer',
  Resize: 'TIDL_ResizeLayer', Upsample: 'TIDL_ResizeLayer', Reshape: 'TIDL_ReshapeLayer', Flatten: 'TIDL_FlattenLayer',
  Transpose: 'TIDL_TransposeLayer', Slice: 'TIDL_SliceLayer', Split: 'TIDL_SliceLayer', Pad: 'TIDL_PadLayer', HardSigmoid: 'TIDL_HardSigmoidLayer',
  HardSwish: 'TIDL_HardSwishLayer', ReduceMean: 'TIDL_ReduceLayer', ReduceMax: 'TIDL_ReduceLayer',
};

const ELEMENT_TYPE = { uint8: 0, int8: 1, uint16: 2, int16: 3, int32: 5 } as const;

interface TensorParams {
  min: number;
  max: number;
  size: number;
  element_type: number;
  scale: number[];
  zero_point: number[];
  value?: number[];
}

/** The range a format fills, symmetric as TIDL's symmetric mode reads it: [0, 2^bits - 1] or
 *  ±(2^(bits-1) - 1), over 2^scaleLog2. */
function formatRange(bits: number, signed: boolean, scaleLog2: number): [number, number] {
  const hi = (signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1) * 2 ** -scaleLog2;
  return [signed ? -hi : 0, hi];
}

/**
 * The TIDLNetQuantParams of a calibration, as a plain object of the schema's fields. `producers`
 * gives the ONNX op type that computes each tensor (absent: a model input); `inFloat` holds the
 * outputs of nodes kept in float (left out: TIDL does not run them).
 */
export function tidlQuantParams(table: CalibrationTable, producers: Map<string, string>, inFloat = new Set<string>()): Record<string, unknown> {
  const layerOf = new Map(Object.entries(table.layers).map(([name, l]) => [l.output, { name, l }]));
  let perChannel = false;
  const layers = Object.entries(table.tensors).filter(([tensor]) => !inFloat.has(tensor)).map(([tensor, t]) => {
    const [min, max] = formatRange(t.bits, t.signed, t.scaleLog2);
    const type = (t.bits === 8 ? (t.signed ? 'int8' : 'uint8') : t.signed ? 'int16' : 'uint16') as keyof typeof ELEMENT_TYPE;
    const outputs: TensorParams = { min, max, size: 1, element_type: ELEMENT_TYPE[type], scale: [t.scale], zero_point: [0] };
    const weightLayer = layerOf.get(tensor);
    const op = weightLayer?.l.op ?? producers.get(tensor);
    const entry: Record<string, unknown> = {
      layer_name: tensor, layer_type: op ? LAYER_TYPES[op] ?? `TIDL_${op}Layer` : 'TIDL_DataLayer', bit_depth: t.bits / 8, outputs: [outputs],
    };
    if (weightLayer) {
      const { l } = weightLayer;
      const inScale = table.tensors[l.input]?.scaleLog2 ?? table.integers?.[weightLayer.name]?.inputs[0]?.scaleLog2;
      if (inScale === undefined) fail('BAD_INPUT', `calibration.json: no format for the input "${l.input}" of layer "${weightLayer.name}"`);
      const wMax = (2 ** (l.weightBits - 1) - 1) * 2 ** -Math.max(...l.weightScaleLog2);
      perChannel ||= l.weightScaleLog2.length > 1;
      entry.weights = [{
        min: -wMax, max: wMax, size: l.weightScaleLog2.length, element_type: ELEMENT_TYPE[l.weightBits === 16 ? 'int16' : 'int8'],
        scale: l.weightScaleLog2.map((e) => 2 ** e), zero_point: l.weightScaleLog2.map(() => 0),
      }];
      const accScales = l.weightScaleLog2.map((e) => 2 ** (inScale + e));
      entry.bias = [{
        min: Math.min(...l.bias), max: Math.max(...l.bias), size: l.bias.length,
        element_type: ELEMENT_TYPE[l.weightBits === 16 ? 'int32' : 'int16'], scale: accScales, zero_point: accScales.map(() => 0), value: [...l.bias],
      }];
    }
    return entry;
  });
  return { num_layers: layers.length, quant_type: 'SYMMETRIC', calib_type: perChannel ? 'PERCHANNEL' : 'PERTENSOR', layers };
}

// ---- protobuf text format, driven by the schema ----

function textValue(field: protobuf.Field, v: unknown): string {
  if (field.resolvedType instanceof protobuf.Enum) return String(v);
  if (field.type === 'string') return JSON.stringify(v);
  if (field.type === 'float') return String(Math.fround(v as number));
  return String(v);
}

/** A message object in protobuf text format (fields in schema order, repeated fields one line per
 *  value, nested messages in braces). */
export function toTextFormat(type: protobuf.Type, obj: Record<string, unknown>, indent = ''): string {
  const err = type.verify(type.fromObject(obj));
  if (err) fail('BAD_INPUT', `${type.name}: ${err}`);
  let out = '';
  for (const field of type.fieldsArray) {
    const v = obj[field.name];
    if (v === undefined) continue;
    for (const item of field.repeated ? (v as unknown[]) : [v]) {
      if (field.resolvedType instanceof protobuf.Type) {
        out += `${indent}${field.name} {\n${toTextFormat(field.resolvedType, item as Record<string, unknown>, `${indent}  `)}${indent}}\n`;
      } else {
        out += `${indent}${field.name}: ${textValue(field, item)}\n`;
      }
    }
  }
  return out;
}

/** Read protobuf text format against a message type: unknown fields, wrong kinds of values and
 *  unbalanced braces are errors (a P2Error naming the line). */
export function fromTextFormat(type: protobuf.Type, text: string): Record<string, unknown> {
  let line = 1, at = 0;
  const tokens = [...text.matchAll(/"(?:[^"\\]|\\.)*"|[{}:]|[^\s{}:"#]+|#[^\n]*/g)].map((m) => {
    for (; at < m.index; at++) if (text.charCodeAt(at) === 10) line++;
    return { t: m[0], line };
  }).filter((x) => !x.t.startsWith('#'));
  let i = 0;
  const bad = (msg: string): never => fail('BAD_INPUT', `TIDL quantization parameters, line ${tokens[Math.min(i, tokens.length - 1)]?.line ?? 1}: ${msg}`);
  const message = (t: protobuf.Type, closing: boolean): Record<string, unknown> => {
    const obj: Record<string, unknown> = {};
    while (i < tokens.length && tokens[i].t !== '}') {
      const name = tokens[i++].t;
      const field = t.fields[name];
      if (!field) bad(`"${name}" is not a field of ${t.name}`);
      let value: unknown;
      if (field.resolvedType instanceof protobuf.Type) {
        if (tokens[i]?.t === ':') i++;
        if (tokens[i++]?.t !== '{') bad(`${name}: expected "{"`);
        value = message(field.resolvedType, true);
      } else {
        if (tokens[i++]?.t !== ':') bad(`${name}: expected ":"`);
        const raw = tokens[i++]?.t;
        if (raw === undefined) bad(`${name}: missing value`);
        if (field.type === 'string') {
          if (!raw!.startsWith('"')) bad(`${name}: expected a quoted string`);
          value = JSON.parse(raw!);
        } else if (field.resolvedType instanceof protobuf.Enum) {
          if (!(raw! in field.resolvedType.values)) bad(`${name}: "${raw}" is not a ${field.resolvedType.name}`);
          value = raw;
        } else {
          value = Number(raw);
          if (!Number.isFinite(value as number)) bad(`${name}: "${raw}" is not a number`);
        }
      }
      if (field.repeated) ((obj[name] ??= []) as unknown[]).push(value);
      else obj[name] = value;
    }
    if (closing && tokens[i++]?.t !== '}') bad('missing "}"');
    if (!closing && i < tokens.length) bad('unexpected "}"');
    const err = t.verify(t.fromObject(obj));
    if (err) bad(err);
    return obj;
  };
  return message(type, false);
}
