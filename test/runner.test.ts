/** The test runner (scripts/test.mjs) on the fixture suites of test/fixtures/runner: its closing line
 *  counts what the suites ran, skips are neither passes nor failures, and anything but passes and
 *  skips exits non-zero. CI reads that line and the exit code. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.js';

const t = suite('test runner');

function runner(...fixtures: string[]): { last: string; skipped: string; code: number | null } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/test.mjs'), '--dir', join(ROOT, 'test/fixtures/runner'), ...fixtures], {
    encoding: 'utf8', timeout: 60_000,
  });
  const lines = r.stdout.trim().split('\n');
  return { last: lines[lines.length - 1], skipped: lines[lines.length - 2], code: r.status };
}

const cases: [string[], string, string, number][] = [
  [['a-pass'], '2 passed, 0 failed', '0 skipped', 0],
  [['b-skip'], '1 passed, 0 failed', '2 skipped', 0],
  [['a-pass', 'b-skip'], '3 passed, 0 failed', '2 skipped', 0],
  [['c-fail'], '1 passed, 2 failed', '0 skipped', 1],
  [['d-crash'], '0 passed, 1 failed', '0 skipped', 1],
  [['e-hook'], '0 passed, 2 failed', '0 skipped', 1],
  [['f-async'], '2 passed, 1 failed', '0 skipped', 1],
  [['g-hang'], '0 passed, 1 failed', '0 skipped', 1],
  [['no-such-fixture'], '0 passed, 0 failed', '0 skipped', 1],
  // The whole fixture set: every kind at once.
  [[], '6 passed, 7 failed', '2 skipped', 1],
];

for (const [fixtures, last, skipped, code] of cases) {
  t(`${fixtures.join(' + ') || 'all fixtures'}: "${last}", exit ${code}`, () => {
    const r = runner(...fixtures);
    assert.is(r.last, last);
    assert.is(r.skipped, skipped);
    assert.is(r.code, code);
  });
}

t.run();
