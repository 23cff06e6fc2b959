/** Node-only file helpers: reading models (with external data beside them) and writing outputs
 *  safely (never over a user's file without force; temp file + rename so that an interrupted
 *  run leaves the old file or the complete new one). */
import { existsSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fail } from '../errors.js';
import type { LoadOptions } from '../model.js';

export function readFileOrFail(path: string, what: string): Uint8Array {
  if (!existsSync(path)) fail('IO', `${what} not found: ${path}`);
  const st = statSync(path);
  if (st.isDirectory()) fail('IO', `${what} is a directory, not a file: ${path}`);
  // Devices and pipes (/dev/zero, a FIFO) could be read forever.
  if (!st.isFile()) fail('IO', `${what} is not a regular file: ${path}`);
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
        if (!p.startsWith(dir + sep) || !existsSync(p) || !statSync(p).isFile()) return undefined;
        return readFileOrFail(p, 'external data file');
      },
    },
  };
}

/** Temporary files are hidden siblings of their target named with the writer's pid:
 *  `.model.qdq.onnx.1234.tmp`. */
const TEMP_FILE = /^\..+\.(\d+)\.tmp$/;

function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

/** A temp file left by a process that no longer runs (killed with SIGKILL, or the machine lost
 *  power, while it wrote). */
function isStaleTemp(name: string): boolean {
  const m = TEMP_FILE.exec(name);
  if (!m || Number(m[1]) === process.pid) return false;
  try {
    process.kill(Number(m[1]), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Write a set of files as one: every temporary file first (in the target's folder), then the
 * renames back to back. Each file is then either the old one or the complete new one, and as the
 * writes are synchronous a SIGINT/SIGTERM handler (the CLI's) only runs once the whole set is in
 * place; only SIGKILL can cut in, leaving at most stray temp files, which prepareOutputDir
 * removes later.
 */
export function writeFilesAtomic(files: { path: string; data: Uint8Array | string }[]): void {
  const temps = files.map((f) => tempPath(f.path));
  let current = files[0]?.path;
  try {
    files.forEach((f, i) => { current = f.path; writeFileSync(temps[i], f.data); });
    files.forEach((f, i) => { current = f.path; renameSync(temps[i], f.path); });
  } catch (e) {
    for (const t of temps) if (existsSync(t)) unlinkSync(t);
    fail('IO', `cannot write ${current}: ${(e as Error).message}`);
  }
}

/** Prepare an output folder: created if missing; a non-empty one only with force. Temp files of
 *  dead writers are removed first (they are not the user's files). */
export function prepareOutputDir(dir: string, force: boolean, flag = '--out'): string {
  const abs = resolve(dir);
  if (existsSync(abs)) {
    if (!statSync(abs).isDirectory()) fail('IO', `${flag} ${dir} exists and is not a folder`);
    const entries = readdirSync(abs).filter((name) => {
      if (!isStaleTemp(name)) return true;
      unlinkSync(join(abs, name));
      return false;
    });
    if (entries.length && !force) {
      fail('IO', `${flag} ${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); pass --force to overwrite its files`);
    }
  } else {
    mkdirSync(abs, { recursive: true });
  }
  return abs;
}
