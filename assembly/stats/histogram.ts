// Activation statistics for PACT2 range estimation: min/max, histograms, tail search,
// per-channel sums. The TypeScript twins in sdk/quant/histogram.ts are the reference.

/**
 * out[0] = min, out[1] = max over n f32 values (n >= 1). Four independent vector accumulators
 * keep the min/max latency chains apart; wasm's min/max (NaN wins, -0 < +0) give the same result
 * in any order.
 */
export function minmax_f32_simd(x: usize, n: i32, out: usize): void {
  let lo0 = f32x4.splat(Infinity), lo1 = lo0, lo2 = lo0, lo3 = lo0;
  let hi0 = f32x4.splat(-Infinity), hi1 = hi0, hi2 = hi0, hi3 = hi0;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = x + (<usize>i << 2);
    const a = v128.load(p), b = v128.load(p, 16), c = v128.load(p, 32), d = v128.load(p, 48);
    lo0 = f32x4.min(lo0, a);
    hi0 = f32x4.max(hi0, a);
    lo1 = f32x4.min(lo1, b);
    hi1 = f32x4.max(hi1, b);
    lo2 = f32x4.min(lo2, c);
    hi2 = f32x4.max(hi2, c);
    lo3 = f32x4.min(lo3, d);
    hi3 = f32x4.max(hi3, d);
  }
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    lo0 = f32x4.min(lo0, v);
    hi0 = f32x4.max(hi0, v);
  }
  const vmin = f32x4.min(f32x4.min(lo0, lo1), f32x4.min(lo2, lo3));
  const vmax = f32x4.max(f32x4.max(hi0, hi1), f32x4.max(hi2, hi3));
  let lo = min(min(f32x4.extract_lane(vmin, 0), f32x4.extract_lane(vmin, 1)), min(f32x4.extract_lane(vmin, 2), f32x4.extract_lane(vmin, 3)));
  let hi = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    lo = min(lo, v);
    hi = max(hi, v);
  }
  store<f32>(out, lo);
  store<f32>(out, hi, 4);
}

@inline function bump(p: usize): void {
  store<u32>(p, load<u32>(p) + 1);
}

/**
 * Add n values to a histogram of `bins` u32 counters over [lo, hi]:
 * bin = floor((v - lo) * (bins - 1) / (hi - lo) + 0.5), clamped to [0, bins - 1]; with
 * `absolute`, |v| is binned. The bin index is computed in f32, as the reference does.
 * `hist` has room for 8 * bins zeroed counters: each of the 8 values of a step counts into a
 * copy of its own (a run of equal values, e.g. the zeros after a ReLU, would otherwise chain every
 * increment through one memory cell); the copies are added into the first `bins` at the end.
 */
export function histogram_f32_simd(x: usize, n: i32, lo: f32, hi: f32, bins: i32, hist: usize, absolute: bool): void {
  const k: f32 = hi > lo ? <f32>(bins - 1) / (hi - lo) : 0;
  const vk = f32x4.splat(k);
  const vlo = f32x4.splat(lo);
  const half = f32x4.splat(0.5);
  const top = i32x4.splat(bins - 1);
  const zero = i32x4.splat(0);
  // Byte offset of each lane's copy, added to its bin * 4.
  const copiesA = i32x4(0, bins << 2, bins << 3, bins * 12);
  const copiesB = i32x4(bins << 4, bins * 20, bins * 24, bins * 28);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    let v = v128.load(x + (<usize>i << 2));
    let w = v128.load(x + (<usize>i << 2), 16);
    if (absolute) {
      v = f32x4.abs(v);
      w = f32x4.abs(w);
    }
    const b = i32x4.min_s(top, i32x4.max_s(zero, i32x4.trunc_sat_f32x4_s(f32x4.floor(f32x4.add(f32x4.mul(f32x4.sub(v, vlo), vk), half)))));
    const c = i32x4.min_s(top, i32x4.max_s(zero, i32x4.trunc_sat_f32x4_s(f32x4.floor(f32x4.add(f32x4.mul(f32x4.sub(w, vlo), vk), half)))));
    const o = i32x4.add(i32x4.shl(b, 2), copiesA);
    const q = i32x4.add(i32x4.shl(c, 2), copiesB);
    bump(hist + <usize>i32x4.extract_lane(o, 0));
    bump(hist + <usize>i32x4.extract_lane(o, 1));
    bump(hist + <usize>i32x4.extract_lane(o, 2));
    bump(hist + <usize>i32x4.extract_lane(o, 3));
    bump(hist + <usize>i32x4.extract_lane(q, 0));
    bump(hist + <usize>i32x4.extract_lane(q, 1));
    bump(hist + <usize>i32x4.extract_lane(q, 2));
    bump(hist + <usize>i32x4.extract_lane(q, 3));
  }
  for (; i < n; i++) {
    let v = load<f32>(x + (<usize>i << 2));
    if (absolute) v = abs(v);
    let b = <i32>Mathf.floor((v - lo) * k + <f32>0.5);
    b = b < 0 ? 0 : b > bins - 1 ? bins - 1 : b;
    bump(hist + (<usize>b << 2));
  }
  const stride = <usize>bins << 2;
  for (let j = 0; j < bins; j++) {
    const p = hist + (<usize>j << 2);
    let s = load<u32>(p);
    for (let c: usize = 1; c < 8; c++) s += load<u32>(p + c * stride);
    store<u32>(p, s);
  }
}

/**
 * Tail search: out[0] = the first bin where the cumulative count from the low end reaches `cut`,
 * out[1] = the last bin where the cumulative count from the high end reaches it.
 */
export function histogram_tails(hist: usize, bins: i32, cut: f64, out: usize): void {
  let acc: f64 = 0;
  let lo = 0;
  for (; lo < bins - 1; lo++) {
    acc += <f64>load<u32>(hist + (<usize>lo << 2));
    if (acc >= cut) break;
  }
  acc = 0;
  let hi = bins - 1;
  for (; hi > 0; hi--) {
    acc += <f64>load<u32>(hist + (<usize>hi << 2));
    if (acc >= cut) break;
  }
  store<i32>(out, lo);
  store<i32>(out, hi, 4);
}

/** out[c] += sum of x over each channel plane, for an [n, c, size] f32 tensor (out is f64). */
export function channel_sums_f32(x: usize, n: i32, c: i32, size: i32, out: usize): void {
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const base = x + ((<usize>(b * c + ch) * <usize>size) << 2);
      let acc = f32x4.splat(0);
      let i = 0;
      for (; i + 4 <= size; i += 4) acc = f32x4.add(acc, v128.load(base + (<usize>i << 2)));
      let s: f64 = <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
      for (; i < size; i++) s += <f64>load<f32>(base + (<usize>i << 2));
      const p = out + (<usize>ch << 3);
      store<f64>(p, load<f64>(p) + s);
    }
  }
}

/**
 * histogram_f32_simd over a stride-2 subsample of [planes, h, w] planes: rows oy, oy+2, ...,
 * columns ox, ox+2, ... of every plane (the devkit's subsampling of 4-D activations).
 */
export function histogram_f32_sub2(x: usize, planes: i32, h: i32, w: i32, oy: i32, ox: i32, lo: f32, hi: f32, bins: i32, hist: usize, absolute: bool): void {
  const k: f32 = hi > lo ? <f32>(bins - 1) / (hi - lo) : 0;
  for (let p = 0; p < planes; p++) {
    for (let y = oy; y < h; y += 2) {
      const row = x + ((<usize>(p * h + y) * <usize>w) << 2);
      for (let c = ox; c < w; c += 2) {
        let v = load<f32>(row + (<usize>c << 2));
        if (absolute) v = abs(v);
        let b = <i32>Mathf.floor((v - lo) * k + <f32>0.5);
        b = b < 0 ? 0 : b > bins - 1 ? bins - 1 : b;
        const q = hist + (<usize>b << 2);
        store<u32>(q, load<u32>(q) + 1);
      }
    }
  }
}
