// One pass over an f32 tensor for the percentile range estimator: its min, its max, and its m-th
// smallest and m-th largest values (1 <= m <= n). By monotonicity of the binning, those two values
// fall in the bins where a histogram's cumulative counts from either end first reach m, so the
// tails come out without binning every value. Two heaps of m f32 at `heap`: a max-heap of the m
// smallest values seen, and a max-heap of the negated m largest; vector compares against the two
// heap roots skip the values that change neither, which is almost all of them.

/** Put v into a max-heap holding `size` values (sift up). */
@inline function push(h: usize, size: i32, v: f32): void {
  let i = size;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const pv = load<f32>(h + (<usize>p << 2));
    if (!(v > pv)) break;
    store<f32>(h + (<usize>i << 2), pv);
    i = p;
  }
  store<f32>(h + (<usize>i << 2), v);
}

/** Replace the root of a max-heap of m values with v (sift down). */
@inline function replaceRoot(h: usize, m: i32, v: f32): void {
  let i = 0;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= m) break;
    let cv = load<f32>(h + (<usize>c << 2));
    if (c + 1 < m) {
      const rv = load<f32>(h + (<usize>(c + 1) << 2));
      if (rv > cv) {
        c++;
        cv = rv;
      }
    }
    if (!(cv > v)) break;
    store<f32>(h + (<usize>i << 2), cv);
    i = c;
  }
  store<f32>(h + (<usize>i << 2), v);
}

/** out: [min, max, m-th smallest, m-th largest] as f32; `heap` has room for 2 * m f32. */
export function extremes_f32_simd(x: usize, n: i32, m: i32, heap: usize, out: usize): void {
  const low = heap, high = heap + (<usize>m << 2);
  let mn: f32 = Infinity, mx: f32 = -Infinity;
  for (let i = 0; i < m; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    mn = min(mn, v);
    mx = max(mx, v);
    push(low, i, v);
    push(high, i, -v);
  }
  let tLow = load<f32>(low), tHigh = -load<f32>(high);
  let vlo = f32x4.splat(tLow), vhi = f32x4.splat(tHigh);
  let lo0 = f32x4.splat(mn), lo1 = lo0, lo2 = lo0, lo3 = lo0;
  let hi0 = f32x4.splat(mx), hi1 = hi0, hi2 = hi0, hi3 = hi0;
  let i = m;
  while (i < n) {
    let step = 16;
    if (i + 16 <= n) {
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
      const below = v128.or(v128.or(f32x4.lt(a, vlo), f32x4.lt(b, vlo)), v128.or(f32x4.lt(c, vlo), f32x4.lt(d, vlo)));
      const above = v128.or(v128.or(f32x4.gt(a, vhi), f32x4.gt(b, vhi)), v128.or(f32x4.gt(c, vhi), f32x4.gt(d, vhi)));
      if (!v128.any_true(v128.or(below, above))) {
        i += 16;
        continue;
      }
    } else {
      step = n - i;
      for (let k = 0; k < step; k++) {
        const v = load<f32>(x + (<usize>(i + k) << 2));
        mn = min(mn, v);
        mx = max(mx, v);
      }
    }
    // Some value of this block changes a heap: take the block one value at a time.
    for (let k = 0; k < step; k++) {
      const v = load<f32>(x + (<usize>(i + k) << 2));
      if (v < tLow) {
        replaceRoot(low, m, v);
        tLow = load<f32>(low);
      }
      if (v > tHigh) {
        replaceRoot(high, m, -v);
        tHigh = -load<f32>(high);
      }
    }
    vlo = f32x4.splat(tLow);
    vhi = f32x4.splat(tHigh);
    i += step;
  }
  const vmin = f32x4.min(f32x4.min(lo0, lo1), f32x4.min(lo2, lo3));
  const vmax = f32x4.max(f32x4.max(hi0, hi1), f32x4.max(hi2, hi3));
  mn = min(mn, min(min(f32x4.extract_lane(vmin, 0), f32x4.extract_lane(vmin, 1)), min(f32x4.extract_lane(vmin, 2), f32x4.extract_lane(vmin, 3))));
  mx = max(mx, max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3))));
  store<f32>(out, mn);
  store<f32>(out, mx, 4);
  store<f32>(out, tLow, 8);
  store<f32>(out, tHigh, 12);
}
