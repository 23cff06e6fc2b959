/**
 * TIDL trace files (DESIGN.md §5): what the device and TIDL's PC emulation write with
 * debug_level=3, one file per layer output:
 *   <base><dataId:04d>_<batch:04d>_<dim1:04d>_<dim2:05d>_<channels:05d>_<width:05d>x<height:05d>.y
 * (an older form omits dim1 and dim2), raw elements in the tensor's type (uint8/int8/uint16/int16,
 * little-endian), NCHW, no padding; beside it <same name without .y>_float.bin holds the float32
 * values q / 2^scaleLog2; layer_info.txt maps data ids to layers and ONNX names.
 */
import type { IntArray } from '../engine/fixed.js';
import { check } from '../guard.js';
import { dequantizeValue, type QType, type TensorQ } from '../device/spec.js';

export const DEFAULT_TRACE_BASE = 'tidl_trace';
export const LAYER_INFO = 'layer_info.txt';

export interface TraceDims {
  batch: number;
  dim1: number;
  dim2: number;
  channels: number;
  height: number;
  width: number;
}

/** One traced tensor. */
export interface TraceLayer {
  /** TIDL's data id: model inputs first, then every layer output in execution order. */
  dataId: number;
  /** The layer writing it (inputs are layer 0 .. k-1, like TIDL's data layers). */
  layerId: number;
  /** ONNX nodes of the layer (a layer and its fused activation); empty for model inputs. */
  nodes: string[];
  tensor: string;
  q: TensorQ;
  type: QType;
  shape: number[];
  data: IntArray;
}

/** The trace dims of an ONNX shape: dim 0 is the batch; the others fill dim1, dim2, channels,
 *  height, width from the right (a [N, K] Gemm output is K wide); extra leading dims fold into
 *  dim1. */
export function traceDims(shape: readonly number[]): TraceDims {
  const rest = shape.slice(1);
  while (rest.length > 5) rest.splice(0, 2, rest[0] * rest[1]);
  const [dim1, dim2, channels, height, width] = [...new Array<number>(5 - rest.length).fill(1), ...rest];
  return { batch: shape.length ? shape[0] : 1, dim1, dim2, channels, height, width };
}

export function dimsCount(d: TraceDims): number {
  return d.batch * d.dim1 * d.dim2 * d.channels * d.height * d.width;
}

export function formatDims(d: TraceDims): string {
  return [d.batch, d.dim1, d.dim2, d.channels, d.height, d.width].join('x');
}

const pad = (v: number, n: number) => String(v).padStart(n, '0');

export function traceName(base: string, dataId: number, d: TraceDims): string {
  return `${base}${pad(dataId, 4)}_${pad(d.batch, 4)}_${pad(d.dim1, 4)}_${pad(d.dim2, 5)}_${pad(d.channels, 5)}_${pad(d.width, 5)}x${pad(d.height, 5)}.y`;
}

export interface ParsedTraceName {
  base: string;
  dataId: number;
  dims: TraceDims;
  /** 'long' with dim1/dim2, 'short' without. */
  form: 'long' | 'short';
}

// The base ends with a non-digit (or is empty) so that the data id is not cut short.
const LONG = /^(|.*\D)(\d{4,})_(\d{4,})_(\d{4,})_(\d{5,})_(\d{5,})_(\d{5,})x(\d{5,})\.y$/;
const SHORT = /^(|.*\D)(\d{4,})_(\d{4,})_(\d{5,})_(\d{5,})x(\d{5,})\.y$/;

/** Both name forms; undefined when the name is neither. */
export function parseTraceName(file: string): ParsedTraceName | undefined {
  if (typeof file !== 'string') return undefined;
  let m = LONG.exec(file);
  if (m) {
    const [base, id, batch, dim1, dim2, channels, width, height] = [m[1], ...m.slice(2).map(Number)];
    return { base, dataId: id, dims: { batch, dim1, dim2, channels, height, width }, form: 'long' };
  }
  m = SHORT.exec(file);
  if (m) {
    const [base, id, batch, channels, width, height] = [m[1], ...m.slice(2).map(Number)];
    return { base, dataId: id, dims: { batch, dim1: 1, dim2: 1, channels, height, width }, form: 'short' };
  }
  return undefined;
}

/** The float twin of a .y file. */
export function floatTwin(yName: string): string {
  return `${yName.slice(0, -2)}_float.bin`;
}

export interface LayerInfo {
  layerId: number;
  dataId: number;
  type?: QType;
  scaleLog2?: number;
  nodes: string;
  tensor: string;
}

const HEADER = '# layerId\tdataId\ttype\tscaleLog2\tonnxNodes\ttensor';

export function layerInfoText(layers: TraceLayer[]): string {
  const rows = layers.map((l) => [l.layerId, l.dataId, l.type, l.q.scaleLog2, l.nodes.join('+') || '(input)', l.tensor].join('\t'));
  return `${[HEADER, ...rows].join('\n')}\n`;
}

const TYPES = new Set<string>(['uint8', 'int8', 'uint16', 'int16']);

/** Reads p2calib's layer_info.txt; lines in other forms keep what can be read (ids and a name). */
export function parseLayerInfo(text: string): Map<number, LayerInfo> {
  const out = new Map<number, LayerInfo>();
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim() || line.startsWith('#')) continue;
    const f = line.includes('\t') ? line.split('\t') : line.trim().split(/\s+/);
    const [layerId, dataId] = [Number(f[0]), Number(f[1])];
    if (!Number.isInteger(layerId) || !Number.isInteger(dataId)) continue;
    if (f.length >= 6 && TYPES.has(f[2])) {
      out.set(dataId, { layerId, dataId, type: f[2] as QType, scaleLog2: Number(f[3]), nodes: f[4], tensor: f.slice(5).join('\t') });
    } else {
      out.set(dataId, { layerId, dataId, nodes: f.slice(2).join(' '), tensor: '' });
    }
  }
  return out;
}

/** Every file of a trace folder: the .y files, their float twins and layer_info.txt. */
export function traceFiles(layers: TraceLayer[], base = DEFAULT_TRACE_BASE): Map<string, Uint8Array> {
  check(Array.isArray(layers), 'traceFiles', 'layers must be the array captureTraces returns');
  check(typeof base === 'string' && !/[/\\\0]/.test(base), 'traceFiles', 'the base must be a file name prefix (no "/")');
  const files = new Map<string, Uint8Array>();
  for (const l of layers) {
    const name = traceName(base, l.dataId, traceDims(l.shape));
    files.set(name, new Uint8Array(l.data.buffer, l.data.byteOffset, l.data.byteLength));
    const f = Float32Array.from(l.data, (v) => dequantizeValue(v, l.q));
    files.set(floatTwin(name), new Uint8Array(f.buffer));
  }
  files.set(LAYER_INFO, new TextEncoder().encode(layerInfoText(layers)));
  return files;
}
