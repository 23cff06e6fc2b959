// Activation statistics for PACT2 range estimation: min/max, histograms, tail search,
// per-channel sums. The TypeScript twins in sdk/quant/histogram.ts are the reference.

/** out[0] = min, out[1] = max over n f32 values (n >= 1). */
export function minmax_f32_simd(x: usize, n: i32, out: usize): void {
  let vmin = f32x4.splat(Infinity);
  let vmax = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    vmin = f32x4.min(vmin, v);
    vmax = f32x4.max(vmax, v);
  }
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

/**
 * Add n values to a histogram of `bins` u32 counters over [lo, hi]:
 * bin = floor((v - lo) * (bins - 1) / (hi - lo) + 0.5), clamped to [0, bins - 1]; with
 * `absolute`, |v| is binned. The bin index is computed in f32, as the reference does.
 */
export function histogram_f32_simd(x: usize, n: i32, lo: f32, hi: f32, bins: i32, hist: usize, absolute: bool): void {
  const k: f32 = hi > lo ? <f32>(bins - 1) / (hi - lo) : 0;
  const vk = f32x4.splat(k);
  const vlo = f32x4.splat(lo);
  const half = f32x4.splat(0.5);
  const top = i32x4.splat(bins - 1);
  const zero = i32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    let v = v128.load(x + (<usize>i << 2));
    if (absolute) v = f32x4.abs(v);
    const b = i32x4.min_s(top, i32x4.max_s(zero, i32x4.trunc_sat_f32x4_s(f32x4.floor(f32x4.add(f32x4.mul(f32x4.sub(v, vlo), vk), half)))));
    const p0 = hist + (<usize>i32x4.extract_lane(b, 0) << 2);
    store<u32>(p0, load<u32>(p0) + 1);
    const p1 = hist + (<usize>i32x4.extract_lane(b, 1) << 2);
    store<u32>(p1, load<u32>(p1) + 1);
    const p2 = hist + (<usize>i32x4.extract_lane(b, 2) << 2);
    store<u32>(p2, load<u32>(p2) + 1);
    const p3 = hist + (<usize>i32x4.extract_lane(b, 3) << 2);
    store<u32>(p3, load<u32>(p3) + 1);
  }
  for (; i < n; i++) {
    let v = load<f32>(x + (<usize>i << 2));
    if (absolute) v = abs(v);
    let b = <i32>Mathf.floor((v - lo) * k + <f32>0.5);
    b = b < 0 ? 0 : b > bins - 1 ? bins - 1 : b;
    const p = hist + (<usize>b << 2);
    store<u32>(p, load<u32>(p) + 1);
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
