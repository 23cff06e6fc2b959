/** sdk/util/math.ts: exact power-of-2 exponents, and engine-independent transcendental functions
 *  that agree with the engine's own to within a few ulps. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ceilLog2, exp, floorLog2, log, log10, tanh } from '../sdk/util/math.js';
import { rng } from './helpers.js';

const t = suite('math');

t('floorLog2 and ceilLog2 are exact at and around every power of 2, subnormals included', () => {
  for (let e = -1074; e <= 1023; e++) {
    const x = 2 ** e;
    assert.is(floorLog2(x), e);
    assert.is(ceilLog2(x), e);
    if (e > -1074) {
      const above = e >= -1022 ? x * (1 + 2 ** -52) : x + 2 ** -1074; // the next float up
      assert.is(floorLog2(above), e, `just above 2^${e}`);
      assert.is(ceilLog2(above), e + 1, `just above 2^${e}`);
    }
  }
  assert.is(floorLog2(3 * 2 ** -1070), -1069);
  assert.is(ceilLog2(3 * 2 ** -1070), -1068);
});

t('floorLog2 and ceilLog2 give what Math.log2 gives where the input is not finite and positive', () => {
  for (const x of [0, -0, Infinity, -1, -Infinity, NaN]) {
    assert.equal(floorLog2(x), Math.floor(Math.log2(x)), `floor at ${x}`);
    assert.equal(ceilLog2(x), Math.ceil(Math.log2(x)), `ceil at ${x}`);
  }
});

t('exp, log, log10 and tanh agree with the engine to a few ulps', () => {
  const r = rng(7);
  const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 4 * Number.EPSILON * Math.abs(b), `${what}: ${a} vs ${b}`);
  for (let i = 0; i < 20000; i++) {
    const x = (r() - 0.5) * 100;
    close(exp(x), Math.exp(x), `exp(${x})`);
    close(tanh(x), Math.tanh(x), `tanh(${x})`);
    const y = 10 ** ((r() - 0.5) * 40);
    close(log(y), Math.log(y), `log(${y})`);
    close(log10(y), Math.log10(y), `log10(${y})`);
  }
});

t.run();
