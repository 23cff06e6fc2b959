/** Node-only: trace folders on disk (the formats are in sdk/trace). */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { prepareOutputDir, writeFileAtomic } from './files.js';

/** Every regular file of a trace folder (not recursive). */
export function readTraceDir(dir: string): Map<string, Uint8Array> {
  if (!existsSync(dir)) fail('IO', `trace folder not found: ${dir}`);
  if (!statSync(dir).isDirectory()) fail('IO', `not a folder: ${dir}`);
  const files = new Map<string, Uint8Array>();
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    // Plain arrays: Node may hand small files out as views into a shared pool.
    if (statSync(p).isFile()) files.set(name, new Uint8Array(readFileSync(p)));
  }
  return files;
}

/** Write a trace folder (created if missing; a non-empty one only with force). */
export function writeTraceDir(dir: string, files: Map<string, Uint8Array>, force = false, flag = '--trace-dir'): string {
  const abs = prepareOutputDir(dir, force, flag);
  for (const [name, bytes] of files) writeFileAtomic(join(abs, name), bytes);
  return abs;
}
