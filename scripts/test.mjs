// Runs the compiled uvu suites (dist/test/**/*.test.js) and ends with the line CI reads:
// "N passed, N failed". Extra arguments filter test files by substring.
import { spawn } from 'node:child_process';

const filter = process.argv.slice(2).join('|');
const pattern = filter ? `(${filter.replace(/[.+?^${}()[\]\\]/g, '\\$&')}).*\\.test\\.js$` : '\\.test\\.js$';
const child = spawn(process.execPath, ['node_modules/uvu/bin.js', 'dist/test', pattern], { stdio: ['inherit', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (d) => {
  out += d;
  process.stdout.write(d);
});
child.on('close', (code) => {
  // uvu's totals; strip colour codes before reading them.
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label) => Number(plain.match(new RegExp(`${label}:\\s+(\\d+)`))?.[1] ?? 0);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  let failed = total - passed - skipped;
  if (code !== 0 && failed === 0) failed = 1; // a crash before uvu could count
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
});
