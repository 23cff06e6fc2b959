/**
 * Fault injection for CLI tests, loaded with `node --import dist/test/slow-renames.js`: every
 * fs.renameSync of an output file sleeps P2CALIB_TEST_RENAME_MS milliseconds first, and the first
 * one sends this process P2CALIB_TEST_SIGNAL (if set), so that a signal lands during the renames.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const ms = Number(process.env.P2CALIB_TEST_RENAME_MS ?? 0);
const signal = process.env.P2CALIB_TEST_SIGNAL as NodeJS.Signals | undefined;
const rename = fs.renameSync;
let first = true;
fs.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
  if (String(from).endsWith('.tmp')) {
    if (first && signal) process.kill(process.pid, signal);
    first = false;
    if (ms) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  }
  rename(from, to);
};
syncBuiltinESMExports();
