// Small helpers shared by the float kernels.

/** Store the first n lanes of v (all four when n >= 4). */
@inline
export function storeLanes(y: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(y, v);
    return;
  }
  v128.store32_lane(y, v, 0);
  if (n > 1) v128.store32_lane(y, v, 1, 4);
  if (n > 2) v128.store32_lane(y, v, 2, 8);
}

/** Copy n floats (memory.copy is a call out of the module in engines, too slow for short rows). */
@inline
export function copyFloats(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}
