/**
 * Separable image resampling on 8-bit RGB, the one code path shared by Node and browsers (only
 * decoding differs between them). It reproduces sharp's resize (sharp 0.35.5 with libvips 8.18.7,
 * `fit: 'fill'`) byte for byte, for the four kernels, shrinking and enlarging, each axis on its
 * own: the float baselines of the shared models were measured with sharp, and Node and browsers
 * must give the same tensors. Tests compare both on random sizes, noise and photos, so a sharp
 * upgrade that changes libvips' arithmetic shows there first.
 *
 * This is an independent implementation of the behaviour of libvips' vips_resize (which is LGPL;
 * none of its code is used here). What it does, as measured against sharp:
 * - Shrinking an axis: an integer box pre-shrink when the factor is at least 4 (libvips' "gap" of
 *   2), then a convolution whose kernel is widened by the remaining factor. Kernel weights are
 *   tabulated at 1/64-pixel positions and truncated to 12-bit fixed point; sums are rounded and
 *   clamped to 8 bits after each axis (vertical first). Edge pixels are repeated.
 *   'nearest' subsamples instead of box-averaging.
 * - Enlarging: an affine transform sampled with an interpolator (nearest, bilinear, or bicubic
 *   Catmull-Rom for both 'bicubic' and 'lanczos3'), after any shrinking of the other axis. With
 *   bilinear and bicubic libvips samples at x/scale - 1/2, so an axis left at scale 1 beside an
 *   enlarged one comes out shifted by half a pixel; kept, since the goal is sharp's bytes.
 * - Sample positions are accumulated in floating point the way libvips does, restarting where
 *   libvips starts a new tile of work; this only shows when a position falls exactly on a table
 *   step, which "nice" sizes (256, 320, 416...) often make happen.
 */
import { fail } from '../errors.js';

/** Interleaved 8-bit RGB pixels, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  /** width*height*3 bytes: R, G, B per pixel. */
  data: Uint8Array;
}

export type Interpolation = 'nearest' | 'bilinear' | 'bicubic' | 'lanczos3';
export const INTERPOLATIONS: readonly Interpolation[] = ['nearest', 'bilinear', 'bicubic', 'lanczos3'];

/** Fixed point of the weights: 12 fractional bits (libvips' VIPS_INTERPOLATE_SHIFT). */
const SHIFT = 12;
const ONE = 1 << SHIFT;
const HALF = ONE >> 1;
/** Weight tables are tabulated at 1/64 pixel (VIPS_TRANSFORM_SCALE), 65 entries for 0..1. */
const STEPS = 64;

/** The weight table entry of a sample position: its fraction to the nearest 1/64 (position*128,
 *  masked, plus one, halved, as libvips rounds it). */
const tableStep = (pos: number) => ((Math.trunc(pos * 2 * STEPS) & (2 * STEPS - 1)) + 1) >> 1;

const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);
const clampIndex = (i: number, n: number) => (i < 0 ? 0 : i >= n ? n - 1 : i);

/** C's rint(): round half to even (libvips uses it to size its masks). */
function rint(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(x * Math.PI) / (x * Math.PI));

/** Kernel functions, written as libvips evaluates them so that the truncated weights agree. */
const FILTERS: Record<Exclude<Interpolation, 'nearest'>, (x: number) => number> = {
  bilinear: (x) => {
    x = Math.abs(x);
    return x < 1 ? 1 - x : 0;
  },
  // Catmull-Rom: the Mitchell-Netravali cubic with B = 0, C = 1/2.
  bicubic: (x) => {
    const B = 0, C = 0.5;
    const ax = Math.abs(x), ax2 = ax * ax, ax3 = ax2 * ax;
    if (ax <= 1) return ((12 - 9 * B - 6 * C) * ax3 + (-18 + 12 * B + 6 * C) * ax2 + (6 - 2 * B)) / 6;
    if (ax <= 2) return ((-B - 6 * C) * ax3 + (6 * B + 30 * C) * ax2 + (-12 * B - 48 * C) * ax + (8 * B + 24 * C)) / 6;
    return 0;
  },
  lanczos3: (x) => (x >= -3 && x <= 3 ? sinc(x) * sinc(x / 3) : 0),
};

// ---------------------------------------------------------------------------------------------
// Shrinking one axis

/** How one axis is shrunk: an optional integer box pre-shrink, then a kernel reduce. */
interface Reduce {
  outN: number;
  /** Integer box pre-shrink factor (1: none). */
  box: number;
  /** Length after the box pre-shrink. */
  boxN: number;
  /** Remaining reduce factor; 1 means the box pre-shrink did it all. */
  factor: number;
  /** Offset of the first sample, so that discarded or invented input is split evenly. */
  offset: number;
  taps: number;
  /** STEPS + 1 weight sets of `taps` 12-bit weights, one per 1/64-pixel position. */
  masks: Int32Array;
}

function planReduce(n: number, factor: number, interp: Interpolation): Reduce {
  const outN = Math.floor(n / factor + 0.5);
  let extra = outN * factor - n;
  // libvips leaves at least a factor of 2 (its "gap") to the kernel and box-averages the rest.
  const box = interp === 'nearest' ? 1 : Math.max(1, Math.floor(n / outN / 2));
  if (box > 1) {
    factor /= box;
    extra /= box;
  }
  const taps = interp === 'nearest' ? 1
    : interp === 'bilinear' ? 2 * rint(factor) + 1
    : interp === 'bicubic' ? 2 * rint(2 * factor) + 1
    : 2 * rint(3 * factor) + 1;
  const masks = new Int32Array((STEPS + 1) * taps);
  if (interp === 'nearest') masks.fill(ONE);
  else {
    const f = FILTERS[interp];
    const w = new Float64Array(taps);
    for (let t = 0; t <= STEPS; t++) {
      // Tap i sits at i - half from the sample position x (libvips' convention, kept exactly).
      const half = t / STEPS + taps / 2 - 1;
      let sum = 0;
      for (let i = 0; i < taps; i++) sum += w[i] = f((i - half) / factor);
      // Normalized, then truncated to fixed point (so the weights may sum to a little under 1).
      for (let i = 0; i < taps; i++) masks[t * taps + i] = Math.trunc((w[i] / sum) * ONE);
    }
  }
  return { outN, box, boxN: Math.ceil(n / box), factor, offset: (1 + extra) / 2 - 1, taps, masks };
}

/**
 * Where outputs `from..to-1` of a reduce read: the first input index (before edge clamping) and
 * the weight set. Positions are accumulated from output `start` (where libvips began the region
 * of work holding these outputs) and restart every `tile` outputs (0: never), as libvips does.
 */
function reducePositions(r: Reduce, from: number, to: number, start: number, tile: number): { first: Int32Array; mask: Int32Array } {
  const first = new Int32Array(to - from), mask = new Int32Array(to - from);
  const pad = Math.ceil(r.taps / 2) - 1;
  let y = 0;
  for (let o = start; o < to; o++) {
    if (o === start || (tile && o % tile === 0)) y = (o + 0.5) * r.factor - 0.5 - r.offset;
    if (o >= from) {
      first[o - from] = Math.trunc(y) - pad;
      mask[o - from] = tableStep(y) * r.taps;
    }
    y += r.factor;
  }
  return { first, mask };
}

/** Integer box average along one axis with libvips' rounding (a 32-bit reciprocal multiply). */
function boxShrinkRows(src: Uint8Array, w: number, h: number, k: number): Uint8Array {
  const outH = Math.ceil(h / k), rowLen = w * 3;
  const out = new Uint8Array(outH * rowLen);
  const mult = Math.floor(2 ** 32 / (256 * k));
  const sum = new Int32Array(rowLen);
  for (let o = 0; o < outH; o++) {
    sum.fill(k >> 1);
    for (let i = 0; i < k; i++) {
      const row = Math.min(o * k + i, h - 1) * rowLen;
      for (let e = 0; e < rowLen; e++) sum[e] += src[row + e];
    }
    for (let e = 0; e < rowLen; e++) out[o * rowLen + e] = (sum[e] * mult) >>> 24;
  }
  return out;
}

function boxShrinkCols(src: Uint8Array, w: number, h: number, k: number): Uint8Array {
  const outW = Math.ceil(w / k);
  const out = new Uint8Array(outW * h * 3);
  const mult = Math.floor(2 ** 32 / (256 * k));
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    for (let o = 0; o < outW; o++) {
      let r = k >> 1, g = r, b = r;
      for (let i = 0; i < k; i++) {
        const p = row + Math.min(o * k + i, w - 1) * 3;
        r += src[p];
        g += src[p + 1];
        b += src[p + 2];
      }
      const q = (y * outW + o) * 3;
      out[q] = (r * mult) >>> 24;
      out[q + 1] = (g * mult) >>> 24;
      out[q + 2] = (b * mult) >>> 24;
    }
  }
  return out;
}

/** Vertical reduce of rows `from..to-1` (positions accumulated from row `start`). */
function reduceRows(src: Uint8Array, w: number, h: number, r: Reduce, from: number, to: number, start: number, tile: number): Uint8Array {
  const rowLen = w * 3, n = r.taps, masks = r.masks;
  const { first, mask } = reducePositions(r, from, to, start, tile);
  const out = new Uint8Array((to - from) * rowLen);
  const acc = new Int32Array(rowLen);
  for (let o = 0; o < to - from; o++) {
    acc.fill(HALF);
    for (let i = 0; i < n; i++) {
      const k = masks[mask[o] + i];
      if (k === 0) continue;
      const row = clampIndex(first[o] + i, h) * rowLen;
      for (let e = 0; e < rowLen; e++) acc[e] += k * src[row + e];
    }
    const q = o * rowLen;
    for (let e = 0; e < rowLen; e++) out[q + e] = clamp8(acc[e] >> SHIFT);
  }
  return out;
}

/** Horizontal reduce of every row to r.outN columns. */
function reduceCols(src: Uint8Array, w: number, h: number, r: Reduce, tile: number): Uint8Array {
  const outW = r.outN, n = r.taps;
  const { first, mask } = reducePositions(r, 0, outW, 0, tile);
  // Per output column: the n (clamped) source offsets and weights.
  const offs = new Int32Array(outW * n), wts = new Int32Array(outW * n);
  for (let o = 0; o < outW; o++) {
    for (let i = 0; i < n; i++) {
      offs[o * n + i] = clampIndex(first[o] + i, w) * 3;
      wts[o * n + i] = r.masks[mask[o] + i];
    }
  }
  const out = new Uint8Array(outW * h * 3);
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    let q = y * outW * 3;
    for (let o = 0, t = 0; o < outW; o++, t += n) {
      let rs = HALF, gs = HALF, bs = HALF;
      for (let i = 0; i < n; i++) {
        const k = wts[t + i], p = row + offs[t + i];
        rs += k * src[p];
        gs += k * src[p + 1];
        bs += k * src[p + 2];
      }
      out[q++] = clamp8(rs >> SHIFT);
      out[q++] = clamp8(gs >> SHIFT);
      out[q++] = clamp8(bs >> SHIFT);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Enlarging: libvips' affine transform with an interpolator

/** Catmull-Rom weights at the 65 positions, computed as libvips' bicubic interpolator does. */
const CATMULL: Int32Array = (() => {
  const t = new Int32Array((STEPS + 1) * 4);
  for (let s = 0; s <= STEPS; s++) {
    const x = s / STEPS;
    const cr1 = 1 - x, cr2 = -0.5 * x, cr3 = cr1 * cr2;
    const c0 = cr1 * cr3, c3 = x * cr3, cr4 = c3 - c0;
    const c = [c0, cr1 - c0 + cr4, x - c3 - cr4, c3];
    for (let i = 0; i < 4; i++) t[s * 4 + i] = Math.trunc(c[i] * ONE);
  }
  return t;
})();

/** Source rows available to an enlargement: rows `base..base+count-1` of an image `h` rows
 *  high (rows outside [0, h) are clamped to the edge first). */
interface Rows {
  data: Uint8Array;
  w: number;
  h: number;
  base: number;
}

/**
 * Output rows y0..y1-1 (all `outW` columns) of libvips' affine scale by (hs, vs) with an
 * interpolator. Input coordinates are x/hs - 1/2 for bilinear and bicubic (no offset for
 * nearest), computed through libvips' inverse matrix and its one-pixel embedding border, and
 * accumulated along rows from the left of each `htile`-wide tile (0: whole rows).
 */
function affine(src: Rows, outW: number, y0: number, y1: number, hs: number, vs: number, interp: Interpolation, htile: number, out: Uint8Array): void {
  const { data, w, h, base } = src;
  const inv = 1 / (hs * vs);
  const ia = vs * inv, id = hs * inv;
  // Window offset of the interpolator and libvips' input displacement, both moved by the
  // one-pixel border libvips adds around the input (space "2"). orig = floor(coord) - border.
  const wo = interp === 'bicubic' || interp === 'lanczos3' ? 1 : 0;
  const idisp = (interp === 'nearest' ? 0 : 0.5) - 1;
  const border = wo + 1;
  const rowOf = (r: number) => (clampIndex(r, h) - base) * w * 3;
  // Column positions are the same on every row: integer parts and fractions per column.
  const cx = new Float64Array(outW);
  let ix = 0;
  for (let x = 0; x < outW; x++) {
    if (x === 0 || (htile && x % htile === 0)) ix = ia * x - idisp + wo;
    cx[x] = ix;
    ix += ia;
  }
  const colOff = (c: number) => clampIndex(c, w) * 3;

  if (interp === 'nearest') {
    const cols = Int32Array.from(cx, (v) => colOff(Math.trunc(v) - border));
    for (let y = y0; y < y1; y++) {
      const row = rowOf(Math.trunc(id * y - idisp + wo) - border);
      let q = y * outW * 3;
      for (let x = 0; x < outW; x++) {
        const p = row + cols[x];
        out[q++] = data[p];
        out[q++] = data[p + 1];
        out[q++] = data[p + 2];
      }
    }
    return;
  }

  if (interp === 'bilinear') {
    // 2x2 weights from 12-bit fractions (libvips' integer bilinear, not separable).
    const c0 = new Int32Array(outW), c1 = new Int32Array(outW), fxs = new Int32Array(outW);
    for (let x = 0; x < outW; x++) {
      const i = Math.trunc(cx[x]);
      fxs[x] = Math.trunc((cx[x] - i) * ONE);
      c0[x] = colOff(i - border);
      c1[x] = colOff(i - border + 1);
    }
    for (let y = y0; y < y1; y++) {
      const iy = id * y - idisp + wo, i = Math.trunc(iy);
      const fy = Math.trunc((iy - i) * ONE), fyd = ONE - fy;
      const r0 = rowOf(i - border), r1 = rowOf(i - border + 1);
      let q = y * outW * 3;
      for (let x = 0; x < outW; x++) {
        const X = fxs[x];
        const w4 = (fy * X) >> SHIFT, w2 = (fyd * X) >> SHIFT, w3 = fy - w4, w1 = fyd - w2;
        const p1 = r0 + c0[x], p2 = r0 + c1[x], p3 = r1 + c0[x], p4 = r1 + c1[x];
        for (let c = 0; c < 3; c++) out[q++] = (w1 * data[p1 + c] + w2 * data[p2 + c] + w3 * data[p3 + c] + w4 * data[p4 + c] + HALF) >> SHIFT;
      }
    }
    return;
  }

  // Bicubic: each of the 4 rows is weighted horizontally and rounded before the vertical pass,
  // so the horizontal pass can be done once per source row.
  const offs = new Int32Array(outW * 4), wts = new Int32Array(outW * 4);
  for (let x = 0; x < outW; x++) {
    const i = Math.trunc(cx[x]);
    const t = tableStep(cx[x]);
    for (let k = 0; k < 4; k++) {
      offs[x * 4 + k] = colOff(i - border - 1 + k);
      wts[x * 4 + k] = CATMULL[t * 4 + k];
    }
  }
  const rowsY = new Int32Array((y1 - y0) * 4), wy = new Int32Array((y1 - y0) * 4);
  let lo = Infinity, hi = -Infinity;
  for (let y = y0; y < y1; y++) {
    const iy = id * y - idisp + wo, i = Math.trunc(iy);
    const t = tableStep(iy);
    for (let k = 0; k < 4; k++) {
      const r = clampIndex(i - border - 1 + k, h);
      rowsY[(y - y0) * 4 + k] = r;
      wy[(y - y0) * 4 + k] = CATMULL[t * 4 + k];
      lo = Math.min(lo, r);
      hi = Math.max(hi, r);
    }
  }
  // Horizontal pass, kept unclamped in 32 bits as libvips does between the two passes.
  const rowLen = outW * 3;
  const hbuf = new Int32Array((hi - lo + 1) * rowLen);
  for (let r = lo; r <= hi; r++) {
    const row = rowOf(r);
    let q = (r - lo) * rowLen;
    for (let x = 0, t = 0; x < outW; x++, t += 4) {
      for (let c = 0; c < 3; c++) {
        let s = HALF;
        for (let k = 0; k < 4; k++) s += wts[t + k] * data[row + offs[t + k] + c];
        hbuf[q++] = s >> SHIFT;
      }
    }
  }
  for (let y = y0; y < y1; y++) {
    const j = (y - y0) * 4;
    const a0 = (rowsY[j] - lo) * rowLen, a1 = (rowsY[j + 1] - lo) * rowLen;
    const a2 = (rowsY[j + 2] - lo) * rowLen, a3 = (rowsY[j + 3] - lo) * rowLen;
    const k0 = wy[j], k1 = wy[j + 1], k2 = wy[j + 2], k3 = wy[j + 3];
    const q = y * rowLen;
    for (let e = 0; e < rowLen; e++) {
      out[q + e] = clamp8((k0 * hbuf[a0 + e] + k1 * hbuf[a1 + e] + k2 * hbuf[a2 + e] + k3 * hbuf[a3 + e] + HALF) >> SHIFT);
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** Nearest-neighbour integer subsampling (libvips' vips_subsample), used before a nearest reduce. */
function subsample(src: Uint8Array, w: number, h: number, kx: number, ky: number): { data: Uint8Array; w: number; h: number } {
  const ow = Math.floor(w / kx), oh = Math.floor(h / ky);
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const p = (y * ky * w + x * kx) * 3, q = (y * ow + x) * 3;
      out[q] = src[p];
      out[q + 1] = src[p + 1];
      out[q + 2] = src[p + 2];
    }
  }
  return { data: out, w: ow, h: oh };
}

/** Resize to width x height, byte-identical to sharp's resize with `fit: 'fill'`. */
export function resizeRgb(img: RgbImage, width: number, height: number, interp: Interpolation): RgbImage {
  if (!(width >= 1 && height >= 1 && Number.isInteger(width) && Number.isInteger(height))) fail('BAD_OPTION', `cannot resize to ${width}x${height}`);
  if (width === img.width && height === img.height) return img;
  let { width: w, height: h, data } = img;
  // sharp passes libvips the reciprocal of its shrink factors; keep its rounding.
  let hscale = 1 / (w / width), vscale = 1 / (h / height);

  if (interp === 'nearest') {
    // Shrink most of the way by integer subsampling, leaving a factor of 2 to the reduce.
    const kx = Math.max(1, Math.floor(w / Math.floor(w * hscale + 0.5) / 2));
    const ky = Math.max(1, Math.floor(h / Math.floor(h * vscale + 0.5) / 2));
    if (kx > 1 || ky > 1) {
      ({ data, w, h } = subsample(data, w, h, kx, ky));
      hscale *= kx;
      vscale *= ky;
    }
  }
  hscale = Math.max(hscale, 1 / w);
  vscale = Math.max(vscale, 1 / h);

  const rv = vscale < 1 ? planReduce(h, 1 / vscale, interp) : undefined;
  const rh = hscale < 1 ? planReduce(w, 1 / hscale, interp) : undefined;
  // libvips works in 16-row strips, except that a vertical box pre-shrink (without a horizontal
  // one) makes it work in 128x128 tiles; positions restart at each strip or tile.
  const tiled = rv !== undefined && rv.box > 1 && !(rh && rh.box > 1);
  const tileH = tiled ? 128 : 16, tileW = tiled ? 128 : 0;

  const up = hscale > 1 || vscale > 1;
  if (rv) {
    if (rv.box > 1) {
      data = boxShrinkRows(data, w, h, rv.box);
      h = rv.boxN;
    }
    if (rv.factor !== 1) {
      if (up && hscale > 1) return reduceThenEnlarge(data, w, h, rv, width, height, hscale, interp, tileH, tileW);
      data = reduceRows(data, w, h, rv, 0, rv.outN, 0, tileH);
    }
    h = rv.outN;
  }
  if (rh) {
    if (rh.box > 1) {
      data = boxShrinkCols(data, w, h, rh.box);
      w = rh.boxN;
    }
    if (rh.factor !== 1) data = reduceCols(data, w, h, rh, tileW);
    w = rh.outN;
  }
  if (up) {
    const hs = hscale > 1 ? hscale : 1, vs = vscale > 1 ? vscale : 1;
    const out = new Uint8Array(width * height * 3);
    if (interp === 'nearest' && Number.isInteger(hscale) && Number.isInteger(vscale)) zoom(data, w, h, hs, vs, width, height, out);
    else affine({ data, w, h, base: 0 }, width, 0, height, hs, vs, interp, tileW, out);
    data = out;
  }
  return { width, height, data };
}

/** Integer nearest enlargement (libvips' vips_zoom): each pixel repeated. */
function zoom(src: Uint8Array, w: number, h: number, kx: number, ky: number, outW: number, outH: number, out: Uint8Array): void {
  for (let y = 0; y < outH; y++) {
    const row = Math.min(Math.floor(y / ky), h - 1) * w * 3;
    for (let x = 0; x < outW; x++) {
      const p = row + Math.min(Math.floor(x / kx), w - 1) * 3, q = (y * outW + x) * 3;
      out[q] = src[p];
      out[q + 1] = src[p + 1];
      out[q + 2] = src[p + 2];
    }
  }
}

/**
 * Vertical shrink followed by a horizontal enlargement. libvips computes the shrunk rows afresh
 * for each tile of the enlargement, starting a few rows above the tile (how far depends on the
 * interpolator's window), so rows shared by two tiles may differ between them.
 */
function reduceThenEnlarge(src: Uint8Array, w: number, h: number, rv: Reduce, width: number, height: number, hscale: number, interp: Interpolation, tileH: number, tileW: number): RgbImage {
  // How far above a tile libvips starts the shrunk rows it computes for it (found by measuring).
  const lead = interp === 'bicubic' || interp === 'lanczos3' ? 2 : 1;
  const out = new Uint8Array(width * height * 3);
  for (let t = 0; t < height; t += tileH) {
    const end = Math.min(height, t + tileH);
    // The rows an interpolator may read for this tile (a little more, since positions are
    // computed in floating point); none above the start of libvips' region.
    const start = Math.max(0, t - lead), to = Math.min(rv.outN, end + 3);
    const rows = reduceRows(src, w, h, rv, start, to, start, 0);
    affine({ data: rows, w, h: rv.outN, base: start }, width, t, end, hscale, 1, interp, tileW, out);
  }
  return { width, height, data: out };
}
