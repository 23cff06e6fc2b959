// npm run demo: build once if needed (a fresh clone has no dist/), then run `p2calib demo`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const run = (args) => {
  try {
    execFileSync(process.execPath, args, { stdio: 'inherit' });
  } catch (e) {
    process.exit(e.status ?? 1);
  }
};
if (!existsSync('dist/cli/main.js') || !existsSync('sdk/engine/kernels.wasm.ts')) run(['scripts/build.mjs']);
run(['dist/cli/main.js', 'demo', ...process.argv.slice(2)]);
