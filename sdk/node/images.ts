/**
 * Node image decoding with sharp: JPEG, PNG, WebP (and whatever else libvips reads) to 8-bit sRGB.
 * EXIF orientation is applied; grayscale, CMYK and 16-bit images are converted to 8-bit RGB;
 * transparency is composited over white (browsers do the same in sdk/browser/images.ts).
 * Embedded colour profiles are applied by sdk/data/icc.ts, as in browsers, and everything after
 * decoding is the shared pipeline of sdk/data/preprocess.ts: the same tensor in both.
 */
import sharp from 'sharp';
import { fail, P2Error } from '../errors.js';
import { check, checkPath, isRecord } from '../guard.js';
import { MAX_IMAGE_PIXELS, finishGeometry, normalize, planGeometry, type GeometryPlan, type SizedSpec } from '../data/preprocess.js';
import { embeddedProfile, toSrgb } from '../data/icc.js';
import { resizeRgb, type Interpolation, type RgbImage } from '../data/resize.js';
import { readFileOrFail } from './files.js';
import type { StagedLoader } from '../quant/worker.js';

/** Decode image bytes (or a file) to 8-bit RGB. `name` is used in error messages. */
export async function decodeImage(input: Uint8Array | string, name = typeof input === 'string' ? input : 'image'): Promise<RgbImage> {
  let bytes = input as Uint8Array;
  if (typeof input === 'string') {
    try {
      bytes = readFileOrFail(input, 'image');
    } catch (e) {
      // An entry of an image folder that cannot be read (a dangling link, a loop, a FIFO, a
      // device, no permission) is an unusable image like an undecodable one: skipped unless strict.
      if (e instanceof P2Error) fail('BAD_IMAGE', e.message);
      throw e;
    }
  }
  if (!(bytes instanceof Uint8Array)) fail('BAD_INPUT', 'decodeImage: give a file path or the bytes of an image (Uint8Array)');
  if (bytes.byteLength === 0) fail('BAD_IMAGE', `cannot decode image ${name}: the file is empty`);
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS, ignoreIcc: true })
      .autoOrient()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) fail('BAD_IMAGE', `${name}: decoded to ${info.channels} channels, expected 3`);
    const stored = { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
    return toSrgb(stored, await embeddedProfile(bytes));
  } catch (e) {
    if (e instanceof P2Error) throw e;
    const reason = (e as Error).message.split('\n')[0];
    if (/pixel limit/.test(reason)) {
      // Refused from the header alone; its size makes the message clear.
      const { width, height } = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() => ({ width: 0, height: 0 }));
      fail('BAD_IMAGE', `image ${name} is ${width}x${height} pixels, beyond the limit of ${MAX_IMAGE_PIXELS}`);
    }
    fail('BAD_IMAGE', `cannot decode image ${name}: ${reason}`);
  }
}

const SHARP_KERNEL: Record<Interpolation, 'nearest' | 'linear' | 'cubic' | 'lanczos3'> = {
  nearest: 'nearest', bilinear: 'linear', bicubic: 'cubic', lanczos3: 'lanczos3',
};

/** Resample with libvips, the resizer the shared models' float baselines were measured with (the
 *  portable resizer of sdk/data/resize.ts, used in browsers, gives the same bytes; tested). */
export async function resizeWithSharp(img: RgbImage, width: number, height: number, interp: Interpolation): Promise<RgbImage> {
  if (width === img.width && height === img.height) return img;
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: SHARP_KERNEL[interp] })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** sharp: libvips, as the float baselines were measured; portable: sdk/data/resize.ts, the code
 *  browsers run. The two are byte-identical (sharp 0.35 / libvips 8.18, tested), so Node and
 *  browser tensors differ only by their image decoders whichever is chosen. */
export type Resizer = 'sharp' | 'portable';

/** Resize / crop / letterbox a decoded image to the model's input size (8-bit RGB). */
export async function imageGeometry(img: RgbImage, spec: SizedSpec, resizer: Resizer = 'sharp', name = 'image'): Promise<{ image: RgbImage; plan: GeometryPlan }> {
  let plan: GeometryPlan;
  try {
    plan = planGeometry(img.width, img.height, spec);
  } catch (e) {
    if (e instanceof P2Error) fail(e.code, `${name}: ${e.message}`);
    throw e;
  }
  const { width, height } = plan.resize;
  const resized = resizer === 'sharp' ? await resizeWithSharp(img, width, height, spec.interpolation) : resizeRgb(img, width, height, spec.interpolation);
  return { image: finishGeometry(resized, plan, spec), plan };
}

/** Decode a single-channel mask (PNG values = class or category ids), without colour conversion. */
export async function decodeMask(path: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const bytes = readFileOrFail(path, 'mask');
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS }).extractChannel(0).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    fail('BAD_IMAGE', `cannot decode mask ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Decode, preprocess and return the model-ready tensor (or write it into sample `index` of `out`). */
export async function loadImageTensor(path: string, spec: SizedSpec, out?: Float32Array, index = 0, resizer: Resizer = 'sharp'): Promise<Float32Array> {
  checkPath(path, 'loadImageTensor', 'the image');
  check(isRecord(spec), 'loadImageTensor', 'the spec must be a sized preprocessing spec (sizeSpec or presetSpec)');
  check(out === undefined || (out instanceof Float32Array && Number.isInteger(index) && index >= 0), 'loadImageTensor', 'out must be a Float32Array and index a sample position');
  check(resizer === 'sharp' || resizer === 'portable', 'loadImageTensor', 'the resizer must be "sharp" or "portable"');
  const { image, plan } = await imageGeometry(await decodeImage(path), spec, resizer, path);
  return normalize(image, spec, out, index, plan);
}

/** A calibration worker's loader for image files (sdk/quant/worker.ts): what a worker keeps
 *  between passes is the image at the model's size in 8-bit RGB, a quarter of the float tensor. */
export function imageLoader(spec: SizedSpec): StagedLoader<string, { image: RgbImage; plan: GeometryPlan }> {
  return {
    decode: async (path) => imageGeometry(await decodeImage(path), spec, 'sharp', path),
    feeds: ({ image, plan }) => normalize(image, spec, undefined, 0, plan),
    bytes: ({ image }) => image.data.byteLength,
  };
}
