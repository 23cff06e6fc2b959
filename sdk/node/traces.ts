/** Node-only: trace folders on disk (the formats are in sdk/trace). */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail, P2Error } from '../errors.js';
import { check, checkPath } from '../guard.js';
import { parseTraceName } from '../trace/format.js';
import { ioReason, prepareOutputDir, readFileOrFail, realPathInside, releaseOutputDir, writeFilesAtomic } from './files.js';

/** The files a comparison reads: .y traces, their float twins and layer info. Anything else in
 *  the folder (a video, a log) is never read. */
const TRACE_FILE = /(\.y|_float\.bin|layer_info\.txt)$/;

/** Far beyond any layer's trace (a 4-D tensor of 2^28 16-bit elements is 512 MiB, its float twin
 *  1 GiB), short of what Node reads in one piece. */
export const MAX_TRACE_BYTES = 2 ** 30;

/**
 * The trace files of a folder (not recursive). Each is read only if its real path (through any
 * symbolic link) lies inside the folder and it is a regular file; one that cannot be read (a
 * dangling link, a FIFO, a device, a folder, a file outside, no permission) is a problem: pushed
 * to `problems` when given (compare lists them), else a BAD_TRACE error.
 */
export function readTraceDir(dir: string, problems?: string[]): Map<string, Uint8Array> {
  checkPath(dir, 'readTraceDir', 'the trace folder');
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    fail('IO', (e as NodeJS.ErrnoException).code === 'ENOENT' ? `trace folder not found: ${dir}` : `cannot read trace folder ${dir}: ${ioReason(e)}`);
  }
  if (!st.isDirectory()) fail('IO', `not a folder: ${dir}`);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    fail('IO', `cannot read trace folder ${dir}: ${ioReason(e)}`);
  }
  const files = new Map<string, Uint8Array>();
  for (const name of names) {
    if (!TRACE_FILE.test(name)) continue;
    try {
      const real = realPathInside(join(dir, name), dir, 'trace file');
      // Plain arrays: Node may hand small files out as views into a shared pool.
      files.set(name, new Uint8Array(readFileOrFail(real, 'trace file', MAX_TRACE_BYTES)));
    } catch (e) {
      if (!(e instanceof P2Error)) throw e;
      const message = `${dir}: "${name}" cannot be read (${e.message.replace(/^trace file /, '')})`;
      if (!problems) fail('BAD_TRACE', message);
      problems.push(message);
    }
  }
  return files;
}

/** Names a trace folder holds (what its writer may remove as stale temp files). */
const isTraceName = (name: string) => !!parseTraceName(name.replace(/_float\.bin$/, '.y')) || name.endsWith('layer_info.txt');

/** Write a trace folder (created if missing; a non-empty one only with force), as one set. */
export function writeTraceDir(dir: string, files: Map<string, Uint8Array>, force = false, flag = '--trace-dir'): string {
  checkPath(dir, 'writeTraceDir', 'the trace folder');
  check(files instanceof Map && [...files].every(([k, v]) => typeof k === 'string' && !/[/\\\0]/.test(k) && k !== '..' && k !== '.' && v instanceof Uint8Array),
    'writeTraceDir', 'files must map file names (no "/") to bytes (traceFiles)');
  const abs = prepareOutputDir(dir, force, flag, isTraceName);
  try {
    writeFilesAtomic([...files].map(([name, data]) => ({ path: join(abs, name), data })));
  } finally {
    releaseOutputDir(abs);
  }
  return abs;
}
