/**
 * Embedded colour profiles, converted to sRGB by one piece of plain TypeScript in Node and in
 * browsers. The decoders hand over pixels as stored (sharp with `ignoreIcc`, createImageBitmap
 * with `colorSpaceConversion: 'none'`), so both paths give the same tensor even for photos with
 * profiles: libvips (lcms2) and Chromium (skcms) each round their own conversions differently.
 *
 * Handles what cameras and editors embed: matrix/TRC RGB profiles (sRGB, Adobe RGB, camera and
 * display profiles) and gray TRC profiles, found in JPEG (APP2), PNG (iCCP) and WebP (ICCP):
 * within one level of libvips' conversion on every such photo of the shared assets. Other
 * profiles leave the pixels as stored: CMYK (the decoders convert CMYK themselves) and LUT-only
 * ones. A profile that is sRGB within its own fixed-point precision is sRGB.
 */
import type { RgbImage } from './resize.js';

/** The ICC profile embedded in JPEG, PNG or WebP bytes, if any and if it describes the stored
 *  pixels: a gray profile for a gray image, an RGB one for a colour image (libvips ignores the
 *  others, e.g. an RGB camera profile left on a grayscale JPEG). */
export async function embeddedProfile(bytes: Uint8Array): Promise<Uint8Array | undefined> {
  let found: { profile: Uint8Array; gray: boolean } | undefined;
  if (bytes[0] === 0xff && bytes[1] === 0xd8) found = jpegProfile(bytes);
  else if (bytes[0] === 0x89 && ascii(bytes, 1, 3) === 'PNG') found = await pngProfile(bytes);
  else if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') found = webpProfile(bytes);
  if (!found || found.profile.length < 20) return undefined;
  return ascii(found.profile, 16, 4) === (found.gray ? 'GRAY' : 'RGB ') ? found.profile : undefined;
}

const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));
const u16 = (b: Uint8Array, at: number) => (b[at] << 8) | b[at + 1];
const u32 = (b: Uint8Array, at: number) => ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3];
const s15 = (b: Uint8Array, at: number) => (u32(b, at) | 0) / 65536;

function jpegProfile(b: Uint8Array): { profile: Uint8Array; gray: boolean } | undefined {
  // APP2 "ICC_PROFILE\0" segments carry the profile in numbered chunks.
  const chunks: [number, Uint8Array][] = [];
  let components = 0;
  for (let at = 2; at + 4 <= b.length && b[at] === 0xff;) {
    const marker = b[at + 1];
    if (marker === 0xda || marker === 0xd9) break;
    const len = u16(b, at + 2);
    if (marker === 0xe2 && ascii(b, at + 4, 12) === 'ICC_PROFILE\0') chunks.push([b[at + 16], b.subarray(at + 18, at + 2 + len)]);
    // Start of frame (SOF0-SOF15 but DHT, JPG, DAC): its component count.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) components = b[at + 9];
    at += 2 + len;
  }
  if (!chunks.length) return undefined;
  chunks.sort((x, y) => x[0] - y[0]);
  return { profile: concat(chunks.map(([, c]) => c)), gray: components === 1 };
}

async function pngProfile(b: Uint8Array): Promise<{ profile: Uint8Array; gray: boolean } | undefined> {
  const colourType = b[25]; // IHDR, the first chunk
  for (let at = 8; at + 8 <= b.length;) {
    const len = u32(b, at), type = ascii(b, at + 4, 4);
    if (type === 'iCCP') {
      const data = b.subarray(at + 8, at + 8 + len);
      const zlib = data.subarray(data.indexOf(0) + 2); // name, NUL, compression method (0)
      try {
        return { profile: await inflate(zlib), gray: colourType === 0 || colourType === 4 };
      } catch {
        return undefined;
      }
    }
    if (type === 'IDAT' || type === 'IEND') return undefined;
    at += 12 + len;
  }
  return undefined;
}

function webpProfile(b: Uint8Array): { profile: Uint8Array; gray: boolean } | undefined {
  for (let at = 12; at + 8 <= b.length;) {
    const type = ascii(b, at, 4);
    const len = (b[at + 4] | (b[at + 5] << 8) | (b[at + 6] << 16) | (b[at + 7] << 24)) >>> 0;
    if (type === 'ICCP') return { profile: b.subarray(at + 8, at + 8 + len), gray: false };
    at += 8 + len + (len & 1);
  }
  return undefined;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Profiles are kilobytes; a corrupt or hostile iCCP chunk must not inflate without bound. */
const MAX_PROFILE_BYTES = 1 << 22;

async function inflate(zlib: Uint8Array): Promise<Uint8Array> {
  const reader = new Blob([zlib as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate')).getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return concat(parts);
    size += value.length;
    if (size > MAX_PROFILE_BYTES) {
      await reader.cancel();
      throw new Error('colour profile too large');
    }
    parts.push(value);
  }
}

// ---- the conversion ----

/** sRGB's colorants in the D50 profile connection space (the sRGB IEC61966-2.1 profile's). */
const SRGB_D50 = [
  [0.4360747, 0.3850649, 0.1430804],
  [0.2225045, 0.7168786, 0.0606169],
  [0.0139322, 0.0971045, 0.7141733],
];
const srgbDecode = (v: number) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
/** Linear values where sRGB code k+1 starts to be nearer than k. */
const SRGB_THRESHOLDS = Float64Array.from({ length: 255 }, (_, k) => srgbDecode((k + 0.5) / 255));

/** An RGB or gray profile's curves (as 256-entry linear tables) and, for RGB, its colorant matrix. */
interface Shaper {
  curves: Float64Array[];
  matrix: number[][];
}

function tagTable(p: Uint8Array): Map<string, Uint8Array> {
  const tags = new Map<string, Uint8Array>();
  if (p.length < 132) return tags;
  const n = u32(p, 128);
  for (let i = 0; i < n && 144 + 12 * i <= p.length; i++) {
    const at = 132 + 12 * i, off = u32(p, at + 4), len = u32(p, at + 8);
    if (off + len <= p.length) tags.set(ascii(p, at, 4), p.subarray(off, off + len));
  }
  return tags;
}

/** A TRC (curveType or parametricCurveType) sampled at the 256 8-bit codes. */
function curve(t: Uint8Array | undefined): Float64Array | undefined {
  if (!t || t.length < 12) return undefined;
  const type = ascii(t, 0, 4);
  const table = new Float64Array(256);
  if (type === 'curv') {
    const n = u32(t, 8);
    if (t.length < 12 + 2 * n) return undefined;
    if (n <= 1) {
      const gamma = n === 0 ? 1 : u16(t, 12) / 256;
      for (let i = 0; i < 256; i++) table[i] = (i / 255) ** gamma;
      return table;
    }
    for (let i = 0; i < 256; i++) {
      const x = (i / 255) * (n - 1), k = Math.min(n - 2, Math.floor(x)), f = x - k;
      table[i] = (u16(t, 12 + 2 * k) * (1 - f) + u16(t, 14 + 2 * k) * f) / 65535;
    }
    return table;
  }
  if (type === 'para') {
    const fn = u16(t, 8);
    const count = [1, 3, 4, 5, 7][fn];
    if (count === undefined || t.length < 12 + 4 * count) return undefined;
    const [g, a = 1, b = 0, c = 0, d = 0, e = 0, f = 0] = Array.from({ length: count }, (_, i) => s15(t, 12 + 4 * i));
    const eval_ = (x: number): number => {
      switch (fn) {
        case 0: return x ** g;
        case 1: return x >= -b / a ? (a * x + b) ** g : 0;
        case 2: return x >= -b / a ? (a * x + b) ** g + c : c;
        case 3: return x >= d ? (a * x + b) ** g : c * x;
        default: return x >= d ? (a * x + b) ** g + e : c * x + f;
      }
    };
    for (let i = 0; i < 256; i++) table[i] = Math.min(1, Math.max(0, eval_(i / 255)));
    return table;
  }
  return undefined;
}

function xyz(t: Uint8Array | undefined): number[] | undefined {
  return t && t.length >= 20 && ascii(t, 0, 4) === 'XYZ ' ? [s15(t, 8), s15(t, 12), s15(t, 16)] : undefined;
}

function shaper(profile: Uint8Array): Shaper | undefined {
  const tags = tagTable(profile);
  if (ascii(profile, 16, 4) === 'GRAY') {
    // Gray lies on the connection space's white axis: Y = kTRC(v) for all three channels.
    const k = curve(tags.get('kTRC'));
    return k && { curves: [k, k, k], matrix: [] };
  }
  if (ascii(profile, 16, 4) !== 'RGB ') return undefined;
  const curves = ['rTRC', 'gTRC', 'bTRC'].map((s) => curve(tags.get(s)));
  const cols = ['rXYZ', 'gXYZ', 'bXYZ'].map((s) => xyz(tags.get(s)));
  if (curves.some((c) => !c) || cols.some((c) => !c)) return undefined;
  return { curves: curves as Float64Array[], matrix: [0, 1, 2].map((r) => cols.map((c) => c![r])) };
}

/** The 3x3 inverse (the sRGB matrix is well conditioned). */
function invert(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}

const D50_TO_SRGB = invert(SRGB_D50);

function isSrgb(s: Shaper): boolean {
  if (!s.matrix.length) return false;
  const matrixClose = s.matrix.every((row, r) => row.every((v, c) => Math.abs(v - SRGB_D50[r][c]) < 2e-3));
  const curvesClose = s.curves.every((t) => t.every((v, i) => Math.abs(v - srgbDecode(i / 255)) < 1 / 1024));
  return matrixClose && curvesClose;
}

function encode(linear: number): number {
  let lo = 0, hi = 255;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (SRGB_THRESHOLDS[mid] <= linear) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Convert stored pixels to sRGB with their embedded profile (relative colorimetric through the
 * D50 connection space, as matrix/TRC profiles define). Returns the image itself when the profile
 * is sRGB or not one this handles.
 */
export function toSrgb(img: RgbImage, profile: Uint8Array | undefined): RgbImage {
  const s = profile && shaper(profile);
  if (!s || isSrgb(s)) return img;
  const [cr, cg, cb] = s.curves;
  const data = new Uint8Array(img.data.length);
  if (!s.matrix.length) {
    const gray = Uint8Array.from({ length: 256 }, (_, v) => encode(cr[v]));
    for (let i = 0; i < data.length; i++) data[i] = gray[img.data[i]];
    return { width: img.width, height: img.height, data };
  }
  const m = D50_TO_SRGB.map((row) => [0, 1, 2].map((c) => row[0] * s.matrix[0][c] + row[1] * s.matrix[1][c] + row[2] * s.matrix[2][c]));
  for (let i = 0; i < data.length; i += 3) {
    const r = cr[img.data[i]], g = cg[img.data[i + 1]], b = cb[img.data[i + 2]];
    data[i] = encode(m[0][0] * r + m[0][1] * g + m[0][2] * b);
    data[i + 1] = encode(m[1][0] * r + m[1][1] * g + m[1][2] * b);
    data[i + 2] = encode(m[2][0] * r + m[2][1] * g + m[2][2] * b);
  }
  return { width: img.width, height: img.height, data };
}
