// Runs uvu suites and ends with the line CI reads: "N passed, N failed".
//
//   node scripts/test.mjs [--dir DIR] [FILTER ...]
//
// DIR (default dist/test, the compiled suites) is searched for *.test.js / *.test.mjs files; FILTERs
// keep the files whose path contains one of them. The suites run in this process through uvu's
// queue, as uvu's own CLI runs them, but the counts come from each suite's runner (tests run,
// passed, skipped) rather than from uvu's printed summary, whose Total leaves skipped tests out.
// A file that throws while loading, an exception or rejection nobody catches, a hook that throws
// (its suite's tests count as failed) and a run that executed no test all make the exit code 1.
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
let dir = 'dist/test';
const filters = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--dir') dir = args[++i];
  else filters.push(args[i]);
}

function find(d) {
  return readdirSync(d).sort().flatMap((name) => {
    const file = join(d, name);
    if (statSync(file).isDirectory()) return find(file);
    return /\.test\.m?js$/.test(name) ? [file] : [];
  });
}

const root = resolve(dir);
const files = find(root).filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)));

let passed = 0, failed = 0, skipped = 0, finished = false;
const count = () => {
  console.log(`\n${skipped} skipped`);
  console.log(`${passed} passed, ${failed} failed`);
};
const crash = (what, err) => {
  failed++;
  console.log(`\n  CRASH  ${what}: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
};
process.on('uncaughtException', (err) => crash('uncaught exception', err));
process.on('unhandledRejection', (err) => crash('unhandled rejection', err));
// A test that waits on something that never comes lets the event loop run dry: still count.
process.on('exit', () => {
  if (finished) return;
  crash('the run stopped before every suite had finished', 'the event loop emptied (a promise never settled?)');
  count();
});

// uvu queues a file's suites in UVU_QUEUE[UVU_INDEX] instead of running them when UVU_DEFER is set.
globalThis.UVU_DEFER = 1;
globalThis.UVU_QUEUE = [];
for (const [i, file] of files.entries()) {
  const name = relative(root, file);
  globalThis.UVU_INDEX = i;
  globalThis.UVU_QUEUE.push([name]);
  try {
    await import(pathToFileURL(file).href);
  } catch (err) {
    crash(`${name} failed to load`, err);
  }
}

for (const [name, ...suites] of globalThis.UVU_QUEUE) {
  console.log(`\n${name}`);
  for (const run of suites) {
    // uvu's runner: [errors or true, tests passed, tests skipped, tests run].
    const [errors, ok, skips, total] = await run();
    passed += ok;
    failed += total - ok;
    skipped += skips;
    if (errors !== true) console.log(`\n${errors}`);
    else if (ok < total) console.log(`\n  FAIL  ${total - ok} test(s) did not run: a before/after hook threw`);
  }
}

if (passed + failed === 0) {
  console.log(files.length ? '\nno test ran' : `\nno test file in ${dir}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exitCode = 1;
}
if (failed) process.exitCode = 1;
finished = true;
count();
