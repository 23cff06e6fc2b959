// The kernel module: every export is pure compute on byte offsets into linear memory.
// JS owns all memory above __heap_base (weights, the activation arena); kernels never allocate.

export function heap_base(): usize {
  return __heap_base;
}

export { unary_f32_simd } from './float/activation';
export { binary_f32_simd, scale_shift_f32_channels } from './float/binary';
export * from './float/conv';
export * from './float/copy';
export { matmul_f32_act_simd, matmul_f32_packedb_simd } from './float/gemm';
export * from './float/pool';
export * from './float/resize';
export * from './stats/histogram';
export * from './stats/sqnr';
export * from './stats/extremes';
export * from './int/gemm';
export * from './int/dw';
export * from './int/fc';
export * from './int/conv16';
export * from './int/gemm16';
export * from './int/eltwise';
export * from './int/quantize';
export * from './int/pool';
export * from './float/softmax';
