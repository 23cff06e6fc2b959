/**
 * Browser image decoding: createImageBitmap + OffscreenCanvas (main thread or worker) to 8-bit
 * RGB. The browser applies EXIF orientation and converts grayscale, CMYK and 16-bit images;
 * transparency is composited over white, as the Node decoder does. Colour profiles are left to
 * sdk/data/icc.ts (the browser's own conversion rounds differently from libvips), and everything
 * after decoding is the shared pipeline of sdk/data/preprocess.ts: the same tensor as in Node.
 * An ImageBitmap input carries no profile: it is taken as sRGB.
 * Browser-only: imports nothing from Node.
 */
import { embeddedProfile, toSrgb } from '../data/icc.js';
import { MAX_IMAGE_PIXELS, preprocess, type SizedSpec } from '../data/preprocess.js';
import type { RgbImage } from '../data/resize.js';
import { fail } from '../errors.js';

/** Encoded image bytes (a File, a fetched Blob, an ArrayBuffer) or an already decoded bitmap. */
export type ImageInput = Blob | ArrayBuffer | Uint8Array | ImageBitmap;

export async function decodeImage(input: ImageInput, name = input instanceof File ? input.name : 'image'): Promise<RgbImage> {
  let bitmap: ImageBitmap;
  let profile: Uint8Array | undefined;
  if (input instanceof ImageBitmap) {
    bitmap = input;
  } else {
    const blob = input instanceof Blob ? input : new Blob([input as BlobPart]);
    profile = await embeddedProfile(new Uint8Array(await blob.arrayBuffer()));
    try {
      bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
    } catch (e) {
      fail('BAD_IMAGE', `cannot decode image ${name}: ${(e as Error).message ?? e}`);
    }
  }
  const { width, height } = bitmap;
  if (!width || !height) fail('BAD_IMAGE', `image ${name} has no pixels`);
  if (width * height > MAX_IMAGE_PIXELS) fail('BAD_IMAGE', `image ${name} is ${width}x${height} pixels, beyond the limit of ${MAX_IMAGE_PIXELS}`);
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) fail('BAD_IMAGE', 'this browser offers no 2D OffscreenCanvas to decode images');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0);
  if (bitmap !== input) bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i];
    data[j + 1] = rgba[i + 1];
    data[j + 2] = rgba[i + 2];
  }
  return toSrgb({ width, height, data }, profile);
}

/** Decode, preprocess and return the model-ready tensor (or write it into sample `index` of `out`). */
export async function loadImageTensor(input: ImageInput, spec: SizedSpec, out?: Float32Array, index = 0): Promise<Float32Array> {
  return preprocess(await decodeImage(input), spec, out, index);
}
