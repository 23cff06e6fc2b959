/** The preprocessing flags shared by the commands that read images: a preset name or JSON file,
 *  overridden field by field by the general flags. */
import { existsSync } from 'node:fs';
import { fail } from '../sdk/errors.js';
import { parseSpec, PRESETS, type PreprocessSpec } from '../sdk/data/preprocess.js';
import { readText } from '../sdk/node/datasets.js';
import type { Options } from './args.js';

export const PREPROCESS_OPTIONS: Options = {
  preprocess: { type: 'string' },
  size: { type: 'string' },
  resize: { type: 'string' },
  'short-side': { type: 'string' },
  pad: { type: 'string' },
  align: { type: 'string' },
  interpolation: { type: 'string' },
  channels: { type: 'string' },
  scale: { type: 'string' },
  mean: { type: 'string' },
  std: { type: 'string' },
  layout: { type: 'string' },
};

export const PREPROCESS_HELP = `Preprocessing (a preset or JSON file, then field overrides):
  --preprocess P    preset (${Object.keys(PRESETS).join(', ')}) or a JSON spec file
                    (fields: width height resize shortSide padValue align interpolation
                    channels scale mean std layout; "preset" names a base)
  --size WxH        model input size (default: from the model's input shape)
  --resize M        fill | letterbox | crop (short side, then centre crop) | height (PP-OCR lines)
  --short-side N    crop: the short side before cropping
  --pad V           letterbox/height: pad pixel value 0..255
  --align A         letterbox: center | top-left
  --interpolation I nearest | bilinear | bicubic | lanczos3
  --channels C      RGB | BGR
  --scale S         pixel multiplier, e.g. 1/255 (value = (pixel*scale - mean) / std)
  --mean M --std S  one number or three, e.g. 0.485,0.456,0.406
  --layout L        NCHW | NHWC`;

/** One line saying what a spec does, for the commands' reports. */
export function describeSpec(s: PreprocessSpec): string {
  const size = s.width && s.height ? ` ${s.width}x${s.height}` : '';
  const geometry = s.resize === 'crop' ? `crop${size}${s.shortSide ? ` (short side ${s.shortSide})` : ''}`
    : s.resize === 'letterbox' ? `letterbox${size} (pad ${s.padValue ?? 0}, ${s.align ?? 'center'})` : `${s.resize}${size}`;
  const list = (v: number[]) => (v.every((x) => x === v[0]) ? `${v[0]}` : v.join(','));
  return `${geometry}, ${s.interpolation}, ${s.channels}, (x*${+s.scale.toPrecision(6)} - ${list(s.mean)}) / ${list(s.std)}, ${s.layout}`;
}

/** The spec an image command uses with a calibration: the flags over the recorded spec, with a
 *  warning on stderr when they make it differ from the one the calibration was made with. */
export function specForCalibration(values: Record<string, string | boolean | undefined>, recorded: unknown, fallback?: string): PreprocessSpec {
  const rec = recorded ? parseSpec(recorded, 'calibration.json provenance.preprocessing') : undefined;
  const spec = unsizedSpecFromFlags(values, fallback, rec);
  if (rec) {
    const same = (a: PreprocessSpec, b: PreprocessSpec) => JSON.stringify(sizeLess(a)) === JSON.stringify(sizeLess(b)) && (!a.width || !b.width || (a.width === b.width && a.height === b.height));
    if (!same(spec, rec)) console.error(`p2calib: warning: this preprocessing (${describeSpec(spec)}) differs from the calibration's (${describeSpec(rec)})`);
  }
  return spec;
}

function sizeLess(s: PreprocessSpec): Record<string, unknown> {
  const { width: _w, height: _h, ...rest } = s;
  return Object.fromEntries(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function number(text: string, flag: string): number {
  const m = /^\s*(-?[\d.eE+-]+)\s*(?:\/\s*([\d.eE+-]+)\s*)?$/.exec(text);
  const v = m ? Number(m[1]) / (m[2] !== undefined ? Number(m[2]) : 1) : NaN;
  if (!Number.isFinite(v)) fail('BAD_OPTION', `--${flag}: "${text}" is not a number (fractions like 1/255 are fine)`);
  return v;
}

/** The spec from the flags alone (its size, if any, from the preset, file or --size). Without
 *  --preprocess the base is `recorded` (the calibration's), else the `fallback` preset. */
export function unsizedSpecFromFlags(values: Record<string, string | boolean | undefined>, fallback?: string, recorded?: PreprocessSpec): PreprocessSpec {
  const p = values.preprocess as string | undefined;
  let base: Record<string, unknown>;
  if (p === undefined && recorded) {
    base = { ...recorded };
  } else if (p === undefined) {
    if (!fallback) fail('BAD_OPTION', `--preprocess is required for this task (a preset: ${Object.keys(PRESETS).join(', ')}, or a JSON file)`);
    base = { preset: fallback };
  } else if (p in PRESETS) {
    base = { preset: p };
  } else if (existsSync(p)) {
    try {
      base = JSON.parse(readText(p, 'preprocessing file'));
    } catch (e) {
      fail('BAD_OPTION', `--preprocess ${p}: not valid JSON (${(e as Error).message})`);
    }
  } else {
    fail('BAD_OPTION', `--preprocess "${p}" is neither a preset (${Object.keys(PRESETS).join(', ')}) nor an existing JSON file`);
  }
  const o: Record<string, unknown> = { ...base };
  const str = (k: string) => values[k] as string | undefined;
  if (str('size') !== undefined) {
    const m = /^(\d+)[x,](\d+)$/.exec(str('size')!);
    if (!m) fail('BAD_OPTION', `--size: "${str('size')}" is not WIDTHxHEIGHT`);
    [o.width, o.height] = [Number(m[1]), Number(m[2])];
  }
  for (const [flag, key] of [['resize', 'resize'], ['align', 'align'], ['interpolation', 'interpolation'], ['channels', 'channels'], ['layout', 'layout']]) {
    if (str(flag) !== undefined) o[key] = key === 'channels' || key === 'layout' ? str(flag)!.toUpperCase() : str(flag);
  }
  for (const [flag, key] of [['short-side', 'shortSide'], ['pad', 'padValue'], ['scale', 'scale']]) {
    if (str(flag) !== undefined) o[key] = number(str(flag)!, flag);
  }
  for (const k of ['mean', 'std']) {
    if (str(k) === undefined) continue;
    const parts = str(k)!.split(',').map((v) => number(v, k));
    o[k] = parts.length === 1 ? parts[0] : parts;
  }
  return parseSpec(o, p && !(p in PRESETS) ? p : 'preprocessing');
}
