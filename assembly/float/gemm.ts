// Register-blocked f32 GEMM on packed operands: the micro-kernel computes a 4x8 tile of
// Y = S * V + bias, where S (the "splat" operand) is packed as blocks of 4 rows stored
// k-major ([k][4], zero rows past the end) and V is any row-major matrix whose rows are read
// 8 floats at a time (rows may be read past their end; those lanes are never stored).
// Convs use S = packed weights and V = activations (NCHW planes); MatMul/Gemm with a constant
// right operand use S = the activations packed per call and V = the weights packed in
// 8-column panels.
import { activate_rows, clampOnStore } from './activation';
import { storeLanes } from './util';

const CHUNK = 16;

/** The 4x8 micro-kernel. `rowBias` points to 4 per-row values and `colBias` to 8 per-column
 *  values (either may be 0 for none); `mr` x `nr` of the tile are stored, through `act`. Row i
 *  of V is at v + i * vStride, or, given `rows` (a constant 0 at the other call sites, folded
 *  away), at v + rows[i] (i32 byte offsets: the shifted input rows of a direct convolution).
 *  Only Relu/Clip are applied here; callers run activate_rows for the others. */
@inline
export function tile4x8(
  s: usize, v: usize, vStride: usize, k: i32,
  rowBias: usize, colBias: usize,
  y: usize, yStride: usize, mr: i32, nr: i32,
  act: i32, p0: f32, p1: f32, rows: usize = 0,
): void {
  // Sums over chunks of CHUNK k-steps are accumulated into running totals: float32 rounding
  // error then grows with CHUNK + k/CHUNK rather than with k, which keeps deep networks within
  // reach of float64 references and of FMA-based engines. The bias is added last.
  let a00 = f32x4.splat(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
  for (let k0 = 0; k0 < k; k0 += CHUNK) {
    let b00 = f32x4.splat(0), b01 = b00, b10 = b00, b11 = b00, b20 = b00, b21 = b00, b30 = b00, b31 = b00;
    const kEnd = min(k, k0 + CHUNK);
    for (let i = k0; i < kEnd; i++) {
      const vi = rows ? v + <usize>load<i32>(rows + (<usize>i << 2)) : v;
      const v0 = v128.load(vi);
      const v1 = v128.load(vi, 16);
      let w = v128.load32_splat(s);
      b00 = f32x4.add(b00, f32x4.mul(w, v0));
      b01 = f32x4.add(b01, f32x4.mul(w, v1));
      w = v128.load32_splat(s, 4);
      b10 = f32x4.add(b10, f32x4.mul(w, v0));
      b11 = f32x4.add(b11, f32x4.mul(w, v1));
      w = v128.load32_splat(s, 8);
      b20 = f32x4.add(b20, f32x4.mul(w, v0));
      b21 = f32x4.add(b21, f32x4.mul(w, v1));
      w = v128.load32_splat(s, 12);
      b30 = f32x4.add(b30, f32x4.mul(w, v0));
      b31 = f32x4.add(b31, f32x4.mul(w, v1));
      s += 16;
      v += vStride;
    }
    a00 = f32x4.add(a00, b00); a01 = f32x4.add(a01, b01);
    a10 = f32x4.add(a10, b10); a11 = f32x4.add(a11, b11);
    a20 = f32x4.add(a20, b20); a21 = f32x4.add(a21, b21);
    a30 = f32x4.add(a30, b30); a31 = f32x4.add(a31, b31);
  }
  if (colBias) {
    const c0 = v128.load(colBias), c1 = v128.load(colBias, 16);
    a00 = f32x4.add(a00, c0); a01 = f32x4.add(a01, c1);
    a10 = f32x4.add(a10, c0); a11 = f32x4.add(a11, c1);
    a20 = f32x4.add(a20, c0); a21 = f32x4.add(a21, c1);
    a30 = f32x4.add(a30, c0); a31 = f32x4.add(a31, c1);
  }
  if (rowBias) {
    let b = v128.load32_splat(rowBias);
    a00 = f32x4.add(a00, b); a01 = f32x4.add(a01, b);
    b = v128.load32_splat(rowBias, 4);
    a10 = f32x4.add(a10, b); a11 = f32x4.add(a11, b);
    b = v128.load32_splat(rowBias, 8);
    a20 = f32x4.add(a20, b); a21 = f32x4.add(a21, b);
    b = v128.load32_splat(rowBias, 12);
    a30 = f32x4.add(a30, b); a31 = f32x4.add(a31, b);
  }
  a00 = clampOnStore(a00, act, p0, p1); a01 = clampOnStore(a01, act, p0, p1);
  a10 = clampOnStore(a10, act, p0, p1); a11 = clampOnStore(a11, act, p0, p1);
  a20 = clampOnStore(a20, act, p0, p1); a21 = clampOnStore(a21, act, p0, p1);
  a30 = clampOnStore(a30, act, p0, p1); a31 = clampOnStore(a31, act, p0, p1);
  if (mr == 4 && nr == 8) {
    v128.store(y, a00); v128.store(y, a01, 16); y += yStride;
    v128.store(y, a10); v128.store(y, a11, 16); y += yStride;
    v128.store(y, a20); v128.store(y, a21, 16); y += yStride;
    v128.store(y, a30); v128.store(y, a31, 16);
    return;
  }
  storeRow(y, a00, a01, nr);
  if (mr > 1) storeRow(y + yStride, a10, a11, nr);
  if (mr > 2) storeRow(y + 2 * yStride, a20, a21, nr);
  if (mr > 3) storeRow(y + 3 * yStride, a30, a31, nr);
}

/** Store the first `nr` (1..8) lanes of the 8-float row (lo, hi). */
@inline
function storeRow(y: usize, lo: v128, hi: v128, nr: i32): void {
  storeLanes(y, lo, nr);
  if (nr > 4) storeLanes(y + 16, hi, nr - 4);
}

/**
 * Y[m x n] (row stride ldy) = S * X + bias for one group: S packed [ceil(m/4)][k][4], X row-major
 * k x n with row stride ldx, bias one value per row (padded to a multiple of 4).
 * Columns are walked in blocks of `nb` so that the block of X stays in cache across row blocks.
 */
export function gemm_f32_packed_simd(
  s: usize, bias: usize, x: usize, ldx: i32, y: usize, ldy: i32,
  m: i32, k: i32, n: i32, nb: i32, act: i32, p0: f32, p1: f32,
): void {
  const xStride = <usize>ldx << 2;
  const yStride = <usize>ldy << 2;
  for (let n0 = 0; n0 < n; n0 += nb) {
    const nEnd = min(n, n0 + nb);
    for (let m0 = 0; m0 < m; m0 += 4) {
      const sb = s + <usize>m0 * <usize>k * 4;
      const mr = min(4, m - m0);
      const yRow = y + <usize>m0 * yStride;
      const bRow = bias + (<usize>m0 << 2);
      for (let j = n0; j < nEnd; j += 8) {
        tile4x8(sb, x + (<usize>j << 2), xStride, k, bRow, 0, yRow + (<usize>j << 2), yStride, mr, min(8, nEnd - j), act, p0, p1);
      }
      activate_rows(yRow + (<usize>n0 << 2), yStride, mr, nEnd - n0, act, p0, p1);
    }
  }
}

/**
 * Y[m x n] = A[m x k] (row stride lda) * B + bias[n], B packed as [ceil(n/8)][k][8] (zero
 * columns past n), bias padded to a multiple of 8. `ap` is scratch for 4 packed rows of A.
 */
export function matmul_f32_packedb_simd(
  a: usize, lda: i32, b: usize, bias: usize, y: usize, ldy: i32,
  m: i32, k: i32, n: i32, ap: usize, act: i32, p0: f32, p1: f32,
): void {
  const yStride = <usize>ldy << 2;
  const aStride = <usize>lda << 2;
  const panel = <usize>k << 5;
  for (let m0 = 0; m0 < m; m0 += 4) {
    const mr = min(4, m - m0);
    // Pack rows m0..m0+3 of A k-major; missing rows are zeros.
    for (let r = 0; r < 4; r++) {
      const src = a + <usize>(m0 + r) * aStride;
      let dst = ap + (<usize>r << 2);
      if (r < mr) {
        for (let i = 0; i < k; i++) { store<f32>(dst, load<f32>(src + (<usize>i << 2))); dst += 16; }
      } else {
        for (let i = 0; i < k; i++) { store<f32>(dst, 0); dst += 16; }
      }
    }
    const yRow = y + <usize>m0 * yStride;
    for (let j = 0; j < n; j += 8) {
      tile4x8(ap, b + <usize>(j >> 3) * panel, 32, k, 0, bias + (<usize>j << 2), yRow + (<usize>j << 2), yStride, mr, min(8, n - j), act, p0, p1);
    }
    activate_rows(yRow, yStride, mr, n, act, p0, p1);
  }
}

/**
 * Batched MatMul of two activations (attention's Q·Kᵀ and scores·V): per batch i, Y_i [m x n] =
 * A [m x k] at a + aOff[i] floats times B [k x n] at b + bOff[i] floats (i32 offsets), B packed
 * first into `bp` ([ceil(n/8)][k][8], zero columns past n) for matmul_f32_packedb_simd, whose
 * sums (chunks of 16 products) this is. `zero` holds ceil(n/8)*8 zero floats (the bias), `ap`
 * 4*k floats of scratch.
 */
export function matmul_f32_act_simd(
  a: usize, b: usize, y: usize, batch: i32, aOff: usize, bOff: usize, m: i32, k: i32, n: i32,
  bp: usize, zero: usize, ap: usize, act: i32, p0: f32, p1: f32,
): void {
  const rowBytes = <usize>n << 2;
  for (let i = 0; i < batch; i++) {
    const bi = b + (<usize>load<i32>(bOff + (<usize>i << 2)) << 2);
    for (let j = 0; j < n; j += 8) {
      const nr = min(8, n - j);
      let dst = bp + <usize>(j >> 3) * (<usize>k << 5);
      let src = bi + (<usize>j << 2);
      for (let t = 0; t < k; t++) {
        if (nr == 8) {
          v128.store(dst, v128.load(src));
          v128.store(dst, v128.load(src, 16), 16);
        } else {
          for (let c = 0; c < 8; c++) store<f32>(dst + (<usize>c << 2), c < nr ? load<f32>(src + (<usize>c << 2)) : 0);
        }
        dst += 32;
        src += rowBytes;
      }
    }
    matmul_f32_packedb_simd(
      a + (<usize>load<i32>(aOff + (<usize>i << 2)) << 2), k, bp, zero, y + <usize>i * <usize>m * rowBytes, n, m, k, n, ap, act, p0, p1,
    );
  }
}
