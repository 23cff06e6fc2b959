/**
 * Layer-by-layer comparison of two trace folders (TI's procedure to find where a quantized
 * model departs from the device: the first differing layer). Folders are given as maps of file
 * name to bytes so that this runs anywhere; sdk/node/traces.ts reads them from disk.
 */
import { fail, oneLine } from '../errors.js';
import { check } from '../guard.js';
import type { QType } from '../device/spec.js';
import {
  LAYER_INFO, dimsCount, floatTwin, formatDims, parseLayerInfo, parseTraceName, type LayerInfo, type ParsedTraceName,
} from './format.js';

export interface LayerComparison {
  dataId: number;
  /** The layer's ONNX names from layer_info.txt ("nodes -> tensor"), or the file name. */
  name: string;
  file: string;
  dims: string;
  type: QType;
  elements: number;
  bitExact: boolean;
  mismatches: number;
  maxAbsDiff: number;
  /** Flat NCHW index of the first differing element, -1 when none. */
  firstMismatch: number;
  /** The two values at firstMismatch. */
  values?: [number, number];
}

export interface TraceComparison {
  /** Layers present and well-formed in both folders, in data id order. */
  layers: LayerComparison[];
  /** Missing, extra, malformed or size-mismatched files, one clear sentence each. */
  problems: string[];
  /** The first layer beyond the tolerance. */
  firstMismatch?: LayerComparison;
  /** Every layer within the tolerance (bit-exact by default) and no problem. */
  match: boolean;
  /** The largest |difference| (in integer steps) a layer may have and still match. */
  tolerance: number;
}

interface Entry { file: string; parsed: ParsedTraceName; bytes: Uint8Array; width: 1 | 2; floats?: Float32Array }

const READERS = { uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array };

/** The .y files of a folder by data id (or base and id when it holds several bases). */
function entries(label: string, files: Map<string, Uint8Array>, problems: string[]): { byKey: Map<string, Entry>; bases: Set<string> } {
  const list: Entry[] = [];
  for (const [file, bytes] of files) {
    if (!file.endsWith('.y')) continue;
    const parsed = parseTraceName(file);
    if (!parsed) {
      problems.push(`${label}: malformed trace file name "${file}" (expected <base><dataId>_<batch>_[<dim1>_<dim2>_]<channels>_<width>x<height>.y)`);
      continue;
    }
    const n = dimsCount(parsed.dims);
    const width = bytes.length === n ? 1 : bytes.length === 2 * n ? 2 : 0;
    if (!width) {
      problems.push(`${label}: "${file}" has ${bytes.length} bytes; its dims ${formatDims(parsed.dims)} need ${n} (8-bit) or ${2 * n} (16-bit)`);
      continue;
    }
    const twin = files.get(floatTwin(file));
    let floats: Float32Array | undefined;
    if (twin) {
      if (twin.length === 4 * n) floats = new Float32Array(new Uint8Array(twin).buffer);
      else problems.push(`${label}: "${floatTwin(file)}" has ${twin.length} bytes; ${4 * n} expected (${n} float32 values)`);
    }
    list.push({ file, parsed, bytes, width, floats });
  }
  for (const file of files.keys()) {
    if (file.endsWith('_float.bin') && !files.has(`${file.slice(0, -'_float.bin'.length)}.y`)) {
      problems.push(`${label}: "${file}" has no .y file beside it`);
    }
  }
  const bases = new Set(list.map((e) => e.parsed.base));
  const byKey = new Map<string, Entry>();
  for (const e of list) {
    const key = bases.size > 1 ? `${e.parsed.base}|${e.parsed.dataId}` : String(e.parsed.dataId);
    if (byKey.has(key)) problems.push(`${label}: "${e.file}" and "${byKey.get(key)!.file}" both hold data id ${e.parsed.dataId}`);
    else byKey.set(key, e);
  }
  return { byKey, bases };
}

function info(files: Map<string, Uint8Array>): Map<number, LayerInfo> {
  const name = [...files.keys()].find((f) => f === LAYER_INFO || f.endsWith(`_${LAYER_INFO}`) || f.endsWith(`.${LAYER_INFO}`));
  return name ? parseLayerInfo(new TextDecoder().decode(files.get(name)!)) : new Map();
}

/** Element type of a layer: from layer_info.txt, else unsigned unless a float twin is negative. */
function elementType(width: 1 | 2, infos: (LayerInfo | undefined)[], floats: (Float32Array | undefined)[]): QType {
  const declared = infos.find((i) => i?.type)?.type;
  if (declared && (declared.endsWith('8') ? 1 : 2) === width) return declared;
  const signed = floats.some((f) => f?.some((v) => v < 0)) || !floats.some((f) => f);
  return width === 1 ? (signed ? 'int8' : 'uint8') : signed ? 'int16' : 'uint16';
}

/** `unreadable`: problems found while reading the folders (files that could not be read), listed
 *  first. */
export function compareTraces(
  a: Map<string, Uint8Array>, b: Map<string, Uint8Array>, labels: [string, string] = ['A', 'B'], tolerance = 0, unreadable: string[] = [],
): TraceComparison {
  check(a instanceof Map && b instanceof Map, 'compareTraces', 'give two trace folders as maps of file name to bytes (readTraceDir)');
  check([...a.values(), ...b.values()].every((v) => v instanceof Uint8Array), 'compareTraces', 'every file must be a Uint8Array');
  check(Array.isArray(labels) && labels.length === 2 && Array.isArray(unreadable), 'compareTraces', 'labels must be two names, unreadable a list');
  if (!(Number.isInteger(tolerance) && tolerance >= 0)) fail('BAD_OPTION', `tolerance must be an integer >= 0, got ${tolerance}`);
  const problems: string[] = [...unreadable];
  const ea = entries(labels[0], a, problems), eb = entries(labels[1], b, problems);
  const [ia, ib] = [info(a), info(b)];
  const single = ea.bases.size <= 1 && eb.bases.size <= 1;
  const rekey = (m: Map<string, Entry>) => (single ? m : new Map([...m].map(([, e]) => [`${e.parsed.base}|${e.parsed.dataId}`, e])));
  const [ma, mb] = [rekey(ea.byKey), rekey(eb.byKey)];
  const describe = (e: Entry, infos: Map<number, LayerInfo>) => {
    const i = infos.get(e.parsed.dataId);
    return i ? `${i.nodes}${i.tensor ? ` -> ${i.tensor}` : ''}` : e.file;
  };
  if (!ma.size && !mb.size) problems.push(`no trace files (.y) in ${labels[0]} or ${labels[1]}`);

  const layers: LayerComparison[] = [];
  const keys = [...new Set([...ma.keys(), ...mb.keys()])].sort((x, y) => {
    const [ex, ey] = [ma.get(x) ?? mb.get(x)!, ma.get(y) ?? mb.get(y)!];
    return ex.parsed.dataId - ey.parsed.dataId || (ex.parsed.base < ey.parsed.base ? -1 : 1);
  });
  for (const key of keys) {
    const [x, y] = [ma.get(key), mb.get(key)];
    if (!x || !y) {
      const e = (x ?? y)!;
      problems.push(`layer ${e.parsed.dataId} (${describe(e, x ? ia : ib)}): "${e.file}" is in ${x ? labels[0] : labels[1]} but missing in ${x ? labels[1] : labels[0]}`);
      continue;
    }
    const [dx, dy] = [formatDims(x.parsed.dims), formatDims(y.parsed.dims)];
    const sameDims = x.parsed.form === y.parsed.form ? dx === dy
      : dimsCount(x.parsed.dims) === dimsCount(y.parsed.dims) && x.parsed.dims.width === y.parsed.dims.width && x.parsed.dims.height === y.parsed.dims.height;
    if (!sameDims || x.width !== y.width) {
      problems.push(`layer ${x.parsed.dataId} (${describe(x, ia)}): size mismatch, ${labels[0]} has ${dx} of ${x.width * 8}-bit, ${labels[1]} ${dy} of ${y.width * 8}-bit`);
      continue;
    }
    const type = elementType(x.width, [ia.get(x.parsed.dataId), ib.get(y.parsed.dataId)], [x.floats, y.floats]);
    const R = READERS[type];
    // Copies: the bytes may be views into a larger (or unaligned) buffer.
    const va = new R(new Uint8Array(x.bytes).buffer), vb = new R(new Uint8Array(y.bytes).buffer);
    let mismatches = 0, maxAbsDiff = 0, first = -1;
    for (let i = 0; i < va.length; i++) {
      if (va[i] === vb[i]) continue;
      if (first < 0) first = i;
      mismatches++;
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(va[i] - vb[i]));
    }
    layers.push({
      dataId: x.parsed.dataId, name: describe(x, ia.size ? ia : ib), file: x.file, dims: dx, type, elements: va.length,
      bitExact: mismatches === 0, mismatches, maxAbsDiff, firstMismatch: first, values: first >= 0 ? [va[first], vb[first]] : undefined,
    });
  }
  const firstMismatch = layers.find((l) => l.maxAbsDiff > tolerance);
  // File and layer names come from the folders: each problem and name stays one line.
  for (const l of layers) l.name = oneLine(l.name);
  return { layers, problems: problems.map(oneLine), firstMismatch, match: !firstMismatch && !problems.length, tolerance };
}
