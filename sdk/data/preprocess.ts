/**
 * Preprocessing: the spec that turns a decoded 8-bit RGB image into the tensor a model was trained
 * on, the named presets of the shared models, and the pipeline itself. Everything here is plain
 * TypeScript shared by Node and browsers; only decoding (sdk/node/images.ts, sdk/browser/images.ts)
 * differs.
 *
 * The pipeline has two stages:
 *  1. geometry (resize / crop / letterbox) on 8-bit pixels, giving an 8-bit RGB image of the model's
 *     input size — also what a caller feeding raw uint8 pixels to a quantized model needs;
 *  2. a per-channel affine map `v = (p*scale - mean[c]) / std[c]` in the model's channel order
 *     and layout.
 */
import { fail } from '../errors.js';
import { check, isRecord } from '../guard.js';
import type { PixelAffine } from '../passes/transforms.js';
import { INTERPOLATIONS, resizeRgb, type Interpolation, type RgbImage } from './resize.js';

export type ResizeMode = 'fill' | 'letterbox' | 'crop' | 'height';
export type Layout = 'NCHW' | 'NHWC';
export type ChannelOrder = 'RGB' | 'BGR';

export interface PreprocessSpec {
  /** Model input width and height; when absent, taken from the model's input shape. */
  width?: number;
  height?: number;
  /** fill: stretch to width x height; letterbox: keep aspect, pad; crop: resize the short side to
   *  `shortSide`, then take the centre width x height; height (PP-OCR text lines): resize to the
   *  input height, width ceil(height*aspect) capped at the input width, aligned left, padded right. */
  resize: ResizeMode;
  /** crop mode: the short side before cropping (default: round(max(width,height) / 0.875)). */
  shortSide?: number;
  /** letterbox/height modes: pad pixel value (0..255 before normalization; may be fractional, e.g.
   *  127.5 for a zero after x/127.5-1: the tensor gets the exact value) and where the image sits. */
  padValue?: number;
  align?: 'center' | 'top-left';
  interpolation: Interpolation;
  channels: ChannelOrder;
  /** v = (pixel*scale - mean[c]) / std[c], pixel in 0..255, c in the model's channel order. */
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
  layout: Layout;
}

/** A spec whose size is known. */
export type SizedSpec = PreprocessSpec & { width: number; height: number };

export const PRESETS = {
  /** torchvision ImageNet evaluation (MobileNetV2, ResNet, ...). */
  imagenet: {
    width: 224, height: 224, resize: 'crop', shortSide: 256, interpolation: 'bicubic', channels: 'RGB',
    scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], layout: 'NCHW',
  },
  /** YOLOX: BGR, raw 0..255, letterbox with pad 114 aligned top-left. */
  yolox: {
    width: 416, height: 416, resize: 'letterbox', padValue: 114, align: 'top-left', interpolation: 'bilinear',
    channels: 'BGR', scale: 1, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NCHW',
  },
  /** TensorFlow DeepLabV3 MobileNetV2: x/127.5 - 1, NHWC. */
  deeplab: {
    width: 257, height: 257, resize: 'fill', interpolation: 'bilinear', channels: 'RGB',
    scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], layout: 'NHWC',
  },
  /** Ultra-Light-Fast face detector: (x-127)/128. */
  ultraface: {
    width: 320, height: 240, resize: 'fill', interpolation: 'bilinear', channels: 'RGB',
    scale: 1, mean: [127, 127, 127], std: [128, 128, 128], layout: 'NCHW',
  },
  /** PaddleOCR text-direction classifier (predict_cls.py): BGR, height 48, width up to 192 padded
   *  with zeros after (x/255 - 0.5)/0.5. */
  'ppocr-cls': {
    width: 192, height: 48, resize: 'height', padValue: 127.5, interpolation: 'bilinear', channels: 'BGR',
    scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], layout: 'NCHW',
  },
} as const satisfies Record<string, SizedSpec>;

export type PresetName = keyof typeof PRESETS;

export function presetSpec(name: string): SizedSpec {
  const p = (PRESETS as Record<string, SizedSpec>)[name];
  if (!p) fail('BAD_OPTION', `unknown preprocessing preset "${name}" (presets: ${Object.keys(PRESETS).join(', ')})`);
  return { ...p, mean: [...p.mean], std: [...p.std] };
}

const KEYS = new Set(['width', 'height', 'resize', 'shortSide', 'padValue', 'align', 'interpolation', 'channels', 'scale', 'mean', 'std', 'layout', 'preset']);

/**
 * Validate a spec given as a plain object (a JSON file, CLI flags). `preset` names a base that the
 * other fields override; absent fields default to fill/bilinear/RGB/scale 1/mean 0/std 1/NCHW.
 * `where` names the source in error messages.
 */
export function parseSpec(obj: unknown, where = 'preprocessing spec'): PreprocessSpec {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail('BAD_OPTION', `${where}: expected a JSON object`);
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) fail('BAD_OPTION', `${where}: unknown field "${k}" (fields: ${[...KEYS].join(', ')})`);
  const base: PreprocessSpec = o.preset !== undefined
    ? presetSpec(String(o.preset))
    : { resize: 'fill', interpolation: 'bilinear', channels: 'RGB', scale: 1, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NCHW' };
  const bad = (k: string, want: string): never => fail('BAD_OPTION', `${where}: "${k}" must be ${want}, got ${JSON.stringify(o[k])}`);
  const oneOf = <T extends string>(k: string, values: readonly T[]): T | undefined => {
    if (o[k] === undefined) return undefined;
    if (!values.includes(o[k] as T)) bad(k, `one of ${values.join(', ')}`);
    return o[k] as T;
  };
  const num = (k: string, ok: (v: number) => boolean, want: string): number | undefined => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k]) || !ok(o[k] as number)) bad(k, want);
    return o[k] as number;
  };
  const triple = (k: string, ok: (v: number) => boolean, want: string): [number, number, number] | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v === 'number' && Number.isFinite(v) && ok(v)) return [v, v, v];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && ok(x))) {
      bad(k, `a number or 3 numbers, ${want}`);
    }
    return [...(v as number[])] as [number, number, number];
  };
  const posInt = (v: number) => Number.isInteger(v) && v >= 1;
  const spec: PreprocessSpec = { ...base };
  const set = <K extends keyof PreprocessSpec>(k: K, v: PreprocessSpec[K] | undefined) => { if (v !== undefined) spec[k] = v; };
  set('width', num('width', posInt, 'a positive integer'));
  set('height', num('height', posInt, 'a positive integer'));
  set('resize', oneOf('resize', ['fill', 'letterbox', 'crop', 'height'] as const));
  set('shortSide', num('shortSide', posInt, 'a positive integer'));
  set('padValue', num('padValue', (v) => v >= 0 && v <= 255, 'a pixel value in 0..255'));
  set('align', oneOf('align', ['center', 'top-left'] as const));
  set('interpolation', oneOf('interpolation', INTERPOLATIONS));
  set('channels', oneOf('channels', ['RGB', 'BGR'] as const));
  set('scale', num('scale', (v) => v !== 0, 'a non-zero number'));
  set('mean', triple('mean', () => true, 'finite'));
  set('std', triple('std', (v) => v !== 0, 'non-zero'));
  set('layout', oneOf('layout', ['NCHW', 'NHWC'] as const));
  return canonical(spec);
}

const FIELD_ORDER = ['width', 'height', 'resize', 'shortSide', 'padValue', 'align', 'interpolation', 'channels', 'scale', 'mean', 'std', 'layout'] as const;

/** The fields in one order, whatever the spec was built from: the spec calibration.json records
 *  has the same bytes from the CLI, the SDK and the page. */
function canonical<T extends PreprocessSpec>(spec: T): T {
  return Object.fromEntries(FIELD_ORDER.filter((k) => spec[k] !== undefined).map((k) => [k, spec[k]])) as unknown as T;
}

/** The layout a declared 4-D image input shows: NCHW when dim 1 is fixed at 3 channels and dim 3
 *  is not, NHWC the other way round; undefined when the dims do not tell. */
export function declaredLayout(dims: readonly (number | string)[]): Layout | undefined {
  if (dims.length !== 4) return undefined;
  const [first, last] = [dims[1] === 3, dims[3] === 3];
  return first === last ? undefined : first ? 'NCHW' : 'NHWC';
}

/** Refuse a preprocessing layout that the model's declared input dims contradict. */
export function checkImageLayout(dims: readonly (number | string)[], layout: Layout): void {
  const declared = declaredLayout(dims);
  if (declared && declared !== layout) {
    fail('BAD_OPTION', `the model input [${dims}] is ${declared} (3 channels in dim ${declared === 'NCHW' ? 1 : 3}) but the preprocessing's layout is ${layout}: set the layout to ${declared}`);
  }
}

/**
 * The shape an image model runs at, one image at a time, from its declared input dims: a dynamic
 * batch becomes 1, dynamic channels 3, dynamic height and width the preprocessing's size. Undefined
 * when a dim stays unknown (no size to take it from), or when the dims are all fixed already.
 * Shared by the CLI and the page, which then size the spec with sizeSpec.
 */
export function imageInputShape(dims: readonly (number | string)[], spec?: Pick<PreprocessSpec, 'width' | 'height' | 'layout'>): number[] | undefined {
  if (spec) checkImageLayout(dims, spec.layout);
  const out = dims.map((d) => (typeof d === 'number' && d > 0 ? d : undefined));
  if (out.every((d) => d !== undefined)) return undefined;
  out[0] ??= 1;
  if (out.length === 4) {
    const [c, h, w] = (spec?.layout ?? declaredLayout(dims)) === 'NHWC' ? [3, 1, 2] : [1, 2, 3];
    out[c] ??= 3;
    out[h] ??= spec?.height;
    out[w] ??= spec?.width;
  }
  return out.every((d) => d !== undefined) ? (out as number[]) : undefined;
}

/**
 * Fill in the size from a model input shape ([N,3,H,W] for NCHW, [N,H,W,3] for NHWC) and check
 * that the spec agrees with it. The messages name what to change in the spec's own terms (layout,
 * width and height), which the CLI's flags and the page's fields both carry.
 */
export function sizeSpec(spec: PreprocessSpec, inputShape?: readonly number[]): SizedSpec {
  check(isRecord(spec), 'sizeSpec', 'the spec must be a preprocessing spec (parseSpec or presetSpec)');
  check(inputShape === undefined || (Array.isArray(inputShape) && inputShape.every(Number.isSafeInteger)), 'sizeSpec', 'the input shape must be a list of integers');
  let { width, height } = spec;
  if (inputShape) {
    const [c, h, w] = spec.layout === 'NCHW' ? inputShape.slice(1, 4) : [inputShape[3], inputShape[1], inputShape[2]];
    if (inputShape.length !== 4 || c !== 3) {
      fail('BAD_OPTION', `the model input [${inputShape}] is not a 3-channel ${spec.layout} image: check the preprocessing's layout and the input shape`);
    }
    if ((width !== undefined && width !== w) || (height !== undefined && height !== h)) {
      fail('BAD_OPTION', `the preprocessing makes ${width}x${height} images but the model input [${inputShape}] wants ${w}x${h}: set the width and height to ${w}x${h}`);
    }
    width = w;
    height = h;
  }
  if (width === undefined || height === undefined) fail('BAD_OPTION', 'the preprocessing has no width and height, and no model input shape gives them');
  return canonical({ ...spec, width, height });
}

/** Elements of one preprocessed image. */
export const tensorSize = (spec: SizedSpec): number => spec.width * spec.height * 3;

/**
 * Stage 1 as a plan, shared by every resampler: resize the whole image to `resize`, then take the
 * model-size window whose top-left corner sits at `offset` in the resized image (negative offsets:
 * the resized image is placed inside a canvas filled with `pad`, as letterboxing does).
 */
export interface GeometryPlan {
  resize: { width: number; height: number };
  offset: { x: number; y: number };
  pad: number;
}

/** Largest image decoded or resized (100 megapixels, 300 MB as 8-bit RGB): beyond it a file is
 *  refused before its pixels are allocated. */
export const MAX_IMAGE_PIXELS = 100_000_000;

export function planGeometry(imgWidth: number, imgHeight: number, spec: SizedSpec): GeometryPlan {
  if (!(imgWidth >= 1 && imgHeight >= 1)) fail('BAD_IMAGE', `image has no pixels (${imgWidth}x${imgHeight})`);
  const plan = resizePlan(imgWidth, imgHeight, spec);
  // Extreme aspect ratios scaled by their short side (crop) could ask for giga-pixel resizes.
  const { width, height } = plan.resize;
  if (width * height > MAX_IMAGE_PIXELS) {
    fail('BAD_IMAGE', `a ${imgWidth}x${imgHeight} image would be resized to ${width}x${height} for "${spec.resize}", beyond ${MAX_IMAGE_PIXELS} pixels`);
  }
  return plan;
}

function resizePlan(imgWidth: number, imgHeight: number, spec: SizedSpec): GeometryPlan {
  const { width: W, height: H } = spec;
  switch (spec.resize) {
    case 'fill':
      return { resize: { width: W, height: H }, offset: { x: 0, y: 0 }, pad: 0 };
    case 'crop': {
      const s = (spec.shortSide ?? Math.round(Math.max(W, H) / 0.875)) / Math.min(imgWidth, imgHeight);
      const rw = Math.max(W, Math.round(imgWidth * s));
      const rh = Math.max(H, Math.round(imgHeight * s));
      return { resize: { width: rw, height: rh }, offset: { x: Math.floor((rw - W) / 2), y: Math.floor((rh - H) / 2) }, pad: 0 };
    }
    case 'letterbox': {
      const s = Math.min(W / imgWidth, H / imgHeight);
      const rw = Math.min(W, Math.max(1, Math.round(imgWidth * s)));
      const rh = Math.min(H, Math.max(1, Math.round(imgHeight * s)));
      const [x, y] = spec.align === 'top-left' ? [0, 0] : [-Math.floor((W - rw) / 2), -Math.floor((H - rh) / 2)];
      return { resize: { width: rw, height: rh }, offset: { x, y }, pad: spec.padValue ?? 0 };
    }
    case 'height': {
      const rw = Math.min(W, Math.ceil((H * imgWidth) / imgHeight));
      return { resize: { width: rw, height: H }, offset: { x: 0, y: 0 }, pad: spec.padValue ?? 0 };
    }
  }
}

/** Stage 1 after resampling: cut or pad the resized image to the model's size. */
export function finishGeometry(resized: RgbImage, plan: GeometryPlan, spec: SizedSpec): RgbImage {
  const { width: W, height: H } = spec;
  const { x, y } = plan.offset;
  if (resized.width === W && resized.height === H && x === 0 && y === 0) return resized;
  const data = new Uint8Array(W * H * 3).fill(Math.round(plan.pad));
  for (let row = 0; row < H; row++) {
    const sy = row + y;
    if (sy < 0 || sy >= resized.height) continue;
    const x0 = Math.max(0, -x), x1 = Math.min(W, resized.width - x);
    if (x1 <= x0) continue;
    data.set(resized.data.subarray((sy * resized.width + x0 + x) * 3, (sy * resized.width + x1 + x) * 3), (row * W + x0) * 3);
  }
  return { width: W, height: H, data };
}

/** Stage 1 with the built-in resampler: resize / crop / letterbox to the model's input size. */
export function geometry(img: RgbImage, spec: SizedSpec): RgbImage {
  const plan = planGeometry(img.width, img.height, spec);
  return finishGeometry(resizeRgb(img, plan.resize.width, plan.resize.height, spec.interpolation), plan, spec);
}

/** Map a point of the original image to model-input coordinates: x' = x*sx + dx (boxes, masks). */
export function placement(imgWidth: number, imgHeight: number, spec: SizedSpec): { sx: number; sy: number; dx: number; dy: number } {
  const { resize, offset } = planGeometry(imgWidth, imgHeight, spec);
  return { sx: resize.width / imgWidth, sy: resize.height / imgHeight, dx: -offset.x, dy: -offset.y };
}

/** Per model channel c: v = pixel * mul[c] + add[c], pixel in 0..255 (and which RGB channel feeds c). */
export function affine(spec: PreprocessSpec): { mul: number[]; add: number[]; source: number[] } {
  const source = spec.channels === 'RGB' ? [0, 1, 2] : [2, 1, 0];
  return {
    mul: [0, 1, 2].map((c) => spec.scale / spec.std[c]),
    add: [0, 1, 2].map((c) => -spec.mean[c] / spec.std[c]),
    source,
  };
}

function checkSized(spec: unknown, where: string): void {
  check(isRecord(spec) && Array.isArray(spec.mean) && Array.isArray(spec.std) && Number.isInteger(spec.width) && Number.isInteger(spec.height),
    where, 'the spec must be a sized preprocessing spec (sizeSpec or presetSpec)');
}

/** The spec's per-channel affine map in the model's channel order, for a model that takes raw
 *  0..255 pixels and applies it itself (Model.withPixelInput). */
export function pixelAffine(spec: SizedSpec): PixelAffine {
  checkSized(spec, 'pixelAffine');
  return { scale: spec.scale, mean: [...spec.mean], std: [...spec.std], layout: spec.layout };
}

/** The spec that loads raw pixels: its geometry, without the affine map (the model applies it). */
export function pixelSpec(spec: SizedSpec): SizedSpec {
  checkSized(spec, 'pixelSpec');
  return { ...spec, scale: 1, mean: [0, 0, 0], std: [1, 1, 1] };
}

/**
 * Stage 2: normalize and lay out one image (already at the model size) into `out` at sample
 * `index`. Given the geometry plan, padded pixels get the exact (possibly fractional) pad value.
 */
export function normalize(
  img: RgbImage, spec: SizedSpec, out: Float32Array = new Float32Array(tensorSize(spec)), index = 0, plan?: GeometryPlan,
): Float32Array {
  const { width: W, height: H } = spec;
  if (img.width !== W || img.height !== H) fail('BAD_INPUT', `image is ${img.width}x${img.height}, the spec wants ${W}x${H}`);
  const n = W * H;
  const base = index * n * 3;
  if (out.length < base + n * 3) fail('BAD_INPUT', `output buffer too small for sample ${index}`);
  const { mul, add, source } = affine(spec);
  // Content rectangle in model coordinates; outside it, the pad.
  const x0 = plan ? Math.max(0, -plan.offset.x) : 0, y0 = plan ? Math.max(0, -plan.offset.y) : 0;
  const x1 = plan ? Math.min(W, plan.resize.width - plan.offset.x) : W, y1 = plan ? Math.min(H, plan.resize.height - plan.offset.y) : H;
  const d = img.data;
  const lut = new Float32Array(256);
  for (let c = 0; c < 3; c++) {
    const s = source[c];
    for (let p = 0; p < 256; p++) lut[p] = p * mul[c] + add[c];
    const pad = plan ? plan.pad * mul[c] + add[c] : 0;
    const [o, step] = spec.layout === 'NCHW' ? [base + c * n, 1] : [base + c, 3];
    for (let y = 0, i = 0; y < H; y++) {
      const inside = y >= y0 && y < y1;
      for (let x = 0; x < W; x++, i++) out[o + i * step] = inside && x >= x0 && x < x1 ? lut[d[i * 3 + s]] : pad;
    }
  }
  return out;
}

/** Both stages with the built-in resampler: a decoded image to the model-ready tensor (or into
 *  sample `index` of a batch). */
export function preprocess(img: RgbImage, spec: SizedSpec, out?: Float32Array, index = 0): Float32Array {
  const plan = planGeometry(img.width, img.height, spec);
  const sized = finishGeometry(resizeRgb(img, plan.resize.width, plan.resize.height, spec.interpolation), plan, spec);
  return normalize(sized, spec, out, index, plan);
}

export type { RgbImage, Interpolation };
