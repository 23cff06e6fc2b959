/** Node-only: trace folders on disk (the formats are in sdk/trace). */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { prepareOutputDir, readFileOrFail, writeFilesAtomic } from './files.js';

/** The files a comparison reads: .y traces, their float twins and layer info. Anything else in
 *  the folder (a video, a log) is never read. */
const TRACE_FILE = /(\.y|_float\.bin|layer_info\.txt)$/;

/** The trace files of a folder (regular files, not recursive). */
export function readTraceDir(dir: string): Map<string, Uint8Array> {
  if (!existsSync(dir)) fail('IO', `trace folder not found: ${dir}`);
  if (!statSync(dir).isDirectory()) fail('IO', `not a folder: ${dir}`);
  const files = new Map<string, Uint8Array>();
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (!TRACE_FILE.test(name) || !statSync(p).isFile()) continue;
    // Plain arrays: Node may hand small files out as views into a shared pool.
    files.set(name, new Uint8Array(readFileOrFail(p, 'trace file')));
  }
  return files;
}

/** Write a trace folder (created if missing; a non-empty one only with force), as one set. */
export function writeTraceDir(dir: string, files: Map<string, Uint8Array>, force = false, flag = '--trace-dir'): string {
  const abs = prepareOutputDir(dir, force, flag);
  writeFilesAtomic([...files].map(([name, data]) => ({ path: join(abs, name), data })));
  return abs;
}
