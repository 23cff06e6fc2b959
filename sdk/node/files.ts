/** Node-only file helpers: reading models (with external data beside them) and writing outputs
 *  safely (never over a user's file without force; temp file + rename so that an interrupted
 *  run leaves the old file or the complete new one). */
import { existsSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fail } from '../errors.js';
import type { LoadOptions } from '../model.js';

export function readFileOrFail(path: string, what: string): Uint8Array {
  if (!existsSync(path)) fail('IO', `${what} not found: ${path}`);
  if (statSync(path).isDirectory()) fail('IO', `${what} is a directory, not a file: ${path}`);
  try {
    return readFileSync(path);
  } catch (e) {
    fail('IO', `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** The model's bytes plus a resolver for ONNX external data files next to it. */
export function readModelFile(path: string): { bytes: Uint8Array; options: Pick<LoadOptions, 'externalData'> } {
  const bytes = readFileOrFail(path, 'model file');
  const dir = dirname(resolve(path));
  return {
    bytes,
    options: {
      externalData: (location) => {
        const p = resolve(dir, location);
        // External data must stay beside the model; refuse paths escaping its folder.
        if (!p.startsWith(dir) || !existsSync(p)) return undefined;
        return readFileSync(p);
      },
    },
  };
}

/** Write atomically: a temporary file in the same folder, then rename over the target. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    if (existsSync(tmp)) unlinkSync(tmp);
    fail('IO', `cannot write ${path}: ${(e as Error).message}`);
  }
}

/** Prepare an output folder: created if missing; a non-empty one only with force. */
export function prepareOutputDir(dir: string, force: boolean, flag = '--out'): string {
  const abs = resolve(dir);
  if (existsSync(abs)) {
    if (!statSync(abs).isDirectory()) fail('IO', `${flag} ${dir} exists and is not a folder`);
    if (readdirSync(abs).length && !force) fail('IO', `${flag} ${dir} is not empty; pass --force to overwrite its files`);
  } else {
    mkdirSync(abs, { recursive: true });
  }
  return abs;
}
