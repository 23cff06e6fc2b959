// Data movement: a strided gather into a contiguous output, for Transpose and Slice.

/**
 * y (contiguous, n0 x n1 x n2 x n3) = elements of x at i0*s0 + i1*s1 + i2*s2 + i3*s3 (element
 * strides, possibly negative for reversed slices).
 */
export function copy_f32_strided(
  x: usize, y: usize, n0: i32, n1: i32, n2: i32, n3: i32, s0: i32, s1: i32, s2: i32, s3: i32,
): void {
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        // Wraps modulo 2^32 like every wasm32 address, so negative strides work.
        const src = x + <usize>((i0 * s0 + i1 * s1 + i2 * s2) << 2);
        let i = 0;
        if (s3 == 1) {
          for (; i + 4 <= n3; i += 4) v128.store(y + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
          for (; i < n3; i++) store<f32>(y + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
        } else {
          for (; i < n3; i++) store<f32>(y + (<usize>i << 2), load<f32>(src + <usize>((i * s3) << 2)));
        }
        y += <usize>n3 << 2;
      }
    }
  }
}
