// Data movement for float tensors and the fixed-point engine's integers alike (elements of 4, 2 or
// 1 bytes): a strided gather into a contiguous output (Transpose, Slice) and its inverse scatter.

/**
 * y (contiguous, n0 x n1 x n2 x n3) = elements of x at i0*s0 + i1*s1 + i2*s2 + i3*s3 (element
 * strides, possibly negative for reversed slices).
 */
@inline
function copyStrided<T>(x: usize, y: usize, n0: i32, n1: i32, n2: i32, n3: i32, s0: i32, s1: i32, s2: i32, s3: i32): void {
  const size = <i32>sizeof<T>();
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        // Wraps modulo 2^32 like every wasm32 address, so negative strides work.
        const src = x + <usize>((i0 * s0 + i1 * s1 + i2 * s2) * size);
        if (s3 == 1) {
          // Rows are short: a vector loop beats memory.copy's call.
          const bytes = <usize>(n3 * size);
          let i: usize = 0;
          for (; i + 16 <= bytes; i += 16) v128.store(y + i, v128.load(src + i));
          for (; i < bytes; i++) store<u8>(y + i, load<u8>(src + i));
        } else {
          for (let i = 0; i < n3; i++) store<T>(y + <usize>(i * size), load<T>(src + <usize>(i * s3 * size)));
        }
        y += <usize>(n3 * size);
      }
    }
  }
}

export function copy_x32_strided(x: usize, y: usize, n0: i32, n1: i32, n2: i32, n3: i32, s0: i32, s1: i32, s2: i32, s3: i32): void {
  copyStrided<u32>(x, y, n0, n1, n2, n3, s0, s1, s2, s3);
}

export function copy_x16_strided(x: usize, y: usize, n0: i32, n1: i32, n2: i32, n3: i32, s0: i32, s1: i32, s2: i32, s3: i32): void {
  copyStrided<u16>(x, y, n0, n1, n2, n3, s0, s1, s2, s3);
}

export function copy_x8_strided(x: usize, y: usize, n0: i32, n1: i32, n2: i32, n3: i32, s0: i32, s1: i32, s2: i32, s3: i32): void {
  copyStrided<u8>(x, y, n0, n1, n2, n3, s0, s1, s2, s3);
}

/**
 * Spread `planes` planes of qh x qw contiguous elements over a grid whose planes hold `plane`
 * elements in rows of `row`: element (qy, qx) goes to qy*sh*row + qx*sw (y at the phase's first
 * output). ConvTranspose's stride phases use it, for float and for 8/16-bit integers alike.
 */
@inline
function scatterPhase<T>(x: usize, y: usize, planes: i32, qh: i32, qw: i32, plane: i32, row: i32, sh: i32, sw: i32): void {
  const size = <usize>sizeof<T>();
  for (let p = 0; p < planes; p++) {
    let dst = y + <usize>p * <usize>plane * size;
    for (let qy = 0; qy < qh; qy++) {
      for (let qx = 0; qx < qw; qx++) store<T>(dst + <usize>(qx * sw) * size, load<T>(x + <usize>qx * size));
      x += <usize>qw * size;
      dst += <usize>(sh * row) * size;
    }
  }
}

export function scatter_phase_x32(x: usize, y: usize, planes: i32, qh: i32, qw: i32, plane: i32, row: i32, sh: i32, sw: i32): void {
  scatterPhase<u32>(x, y, planes, qh, qw, plane, row, sh, sw);
}

export function scatter_phase_x16(x: usize, y: usize, planes: i32, qh: i32, qw: i32, plane: i32, row: i32, sh: i32, sw: i32): void {
  scatterPhase<u16>(x, y, planes, qh, qw, plane, row, sh, sw);
}

export function scatter_phase_x8(x: usize, y: usize, planes: i32, qh: i32, qw: i32, plane: i32, row: i32, sh: i32, sw: i32): void {
  scatterPhase<u8>(x, y, planes, qh, qw, plane, row, sh, sw);
}
