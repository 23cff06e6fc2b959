/**
 * Transcendental functions that give the same bits on every JavaScript engine.
 *
 * ECMAScript fixes + - * / and sqrt to IEEE-754 round-to-nearest, but leaves Math.exp, Math.log,
 * Math.log10, Math.tanh, ... "implementation-approximated": Node and Chromium ship different V8
 * versions, whose results can differ in the last bit (seen in calibration.json SQNRs). Everything
 * that reaches a calibration (float references of the float-fallback ops, range estimators,
 * SQNR) uses these instead: FreeBSD msun algorithms in plain arithmetic (the stdlib packages).
 */
import exp from '@stdlib/math-base-special-exp';
import ln from '@stdlib/math-base-special-ln';
import log10 from '@stdlib/math-base-special-log10';
import log1p from '@stdlib/math-base-special-log1p';
import tanh from '@stdlib/math-base-special-tanh';

export { exp, ln as log, log10, log1p, tanh };

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // little-endian: high word second

/** floor(log2 x), read off the exponent bits: exact, subnormals included; for 0, Infinity, NaN and
 *  negative x the value Math.floor(Math.log2(x)) has (-Infinity, Infinity, NaN, NaN). */
export function floorLog2(x: number): number {
  if (!(x > 0 && x < Infinity)) return x === 0 ? -Infinity : x === Infinity ? Infinity : NaN;
  if (x < 2 ** -1022) return floorLog2(x * 2 ** 64) - 64;
  F64[0] = x;
  return ((U32[HI] >>> 20) & 0x7ff) - 1023;
}

/** ceil(log2 x), exact, with floorLog2's values where x is not finite and positive. */
export function ceilLog2(x: number): number {
  const e = floorLog2(x);
  return 2 ** e === x ? e : e + 1;
}

/** Signal-to-quantization-noise ratio in dB from sums of squares: 10·log10(signal / noise),
 *  Infinity when there is no noise. */
export function sqnrDb(signal: number, noise: number): number {
  return noise === 0 ? Infinity : 10 * log10(signal / noise);
}
