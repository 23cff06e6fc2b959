/** Node-only file helpers: reading models (with external data beside them) and writing outputs
 *  safely (never over a user's file without force; temp file + rename so that an interrupted
 *  run leaves the old file or the complete new one; one writer per folder at a time). */
import {
  closeSync, constants, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, realpathSync, renameSync, statSync, unlinkSync, writeSync,
  type Stats,
} from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, isAbsolute, join, parse as parsePath, resolve, sep } from 'node:path';
import { fail, P2Error } from '../errors.js';
import type { LoadOptions } from '../model.js';

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder', EACCES: 'permission denied', EPERM: 'operation not permitted', EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device', EDQUOT: 'disk quota exceeded', ENOTDIR: 'a part of the path is not a folder',
  ELOOP: 'a loop of symbolic links', ENAMETOOLONG: 'name too long', EISDIR: 'a folder', EEXIST: 'already exists', EIO: 'input/output error',
  EMFILE: 'too many open files', ENFILE: 'too many open files', EBUSY: 'busy', EXDEV: 'on another file system', EFBIG: 'file too large',
  ENXIO: 'no such device', ENODEV: 'no such device', EINVAL: 'not allowed there',
};

/** A file system error as a short reason: "permission denied (EACCES)". */
export function ioReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code && REASONS[err.code] ? `${REASONS[err.code]} (${err.code})` : String(err?.message ?? e);
}

/** lstat, or undefined where nothing is (or the path cannot be looked at). */
export const lstatOrUndefined = (path: string): Stats | undefined => {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
};

/** Why a path cannot be opened, in words: a dangling link, a loop, missing. */
function openFailure(path: string, what: string, e: unknown): never {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') fail('IO', lstatOrUndefined(path)?.isSymbolicLink() ? `${what} is a dangling symbolic link: ${path}` : `${what} not found: ${path}`);
  if (code === 'ELOOP') fail('IO', `${what} is a loop of symbolic links: ${path}`);
  fail('IO', `cannot read ${what} ${path}: ${ioReason(e)}`);
}

/**
 * Read a regular file whole (of at most maxBytes, checked before reading). It is opened without blocking and checked on the open descriptor,
 * so that a FIFO, /dev/zero or a link to them is refused (not read forever), whatever the path
 * turned into between a check and the read.
 */
export function readFileOrFail(path: string, what: string, maxBytes?: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    openFailure(path, what, e);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) fail('IO', `${what} is a directory, not a file: ${path}`);
    if (!st.isFile()) fail('IO', `${what} is not a regular file: ${path}`);
    if (maxBytes !== undefined && st.size > maxBytes) fail('IO', `${what} ${path} has ${st.size} bytes, more than the ${maxBytes} it may have`);
    return readFileSync(fd);
  } catch (e) {
    if (e instanceof P2Error) throw e;
    fail('IO', `cannot read ${what} ${path}: ${ioReason(e)}`);
  } finally {
    closeSync(fd);
  }
}

/** The real path of `path` (symbolic links resolved), refused unless it lies inside the real
 *  path of `folder`. */
export function realPathInside(path: string, folder: string, what: string): string {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    openFailure(path, what, e);
  }
  const root = realpathSync(folder);
  if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) fail('IO', `${what} ${path} resolves to ${real}, outside ${root}`);
  return real;
}

/** The model's bytes plus a resolver for ONNX external data files next to it. */
export function readModelFile(path: string): { bytes: Uint8Array; options: Pick<LoadOptions, 'externalData'> } {
  const bytes = readFileOrFail(path, 'model file');
  const dir = dirname(resolve(path));
  const files = new Map<string, Uint8Array>();
  return {
    bytes,
    options: {
      externalData: (location) => {
        // External data must stay in the model's folder: the location is relative, and its real
        // path (through any symbolic link) lies inside the folder's real path.
        if (!location || isAbsolute(location)) fail('EXTERNAL_DATA', `the location "${location}" is not a relative path inside the model's folder`);
        const p = resolve(dir, location);
        if (!lstatOrUndefined(p)) return undefined;
        const real = realPathInside(p, dir, 'external data file');
        let data = files.get(real);
        if (!data) files.set(real, (data = readFileOrFail(real, 'external data file')));
        return data;
      },
    },
  };
}

/** Temporary files are hidden siblings of their target named with the writer's pid:
 *  `.model.qdq.onnx.1234.tmp`. */
const TEMP_FILE = /^\.(.+)\.(\d+)\.tmp$/;

function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Write a set of files as one: every temporary file first (in the target's folder), then the
 * renames back to back. Each file is then either the old one or the complete new one, and as the
 * writes are synchronous a SIGINT/SIGTERM handler (the CLI's) only runs once the whole set is in
 * place; only SIGKILL can cut in, leaving at most stray temp files, which prepareOutputDir
 * removes later. Targets that exist must be regular files (or links), checked before anything
 * is written, so that a folder in the way cannot leave half a set.
 */
export function writeFilesAtomic(files: { path: string; data: Uint8Array | string }[]): void {
  for (const f of files) {
    const st = lstatOrUndefined(f.path);
    if (st && !st.isFile() && !st.isSymbolicLink()) fail('IO', `cannot write ${f.path}: it exists and is not a file`);
  }
  const temps = files.map((f) => tempPath(f.path));
  const written: string[] = [];
  let current = files[0]?.path;
  try {
    files.forEach((f, i) => {
      current = f.path;
      // O_EXCL: a link planted under the temp name is not followed (it is an error instead).
      const fd = openSync(temps[i], constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
      written.push(temps[i]);
      try {
        const data = typeof f.data === 'string' ? Buffer.from(f.data) : f.data;
        for (let at = 0; at < data.byteLength;) at += writeSync(fd, data, at);
      } finally {
        closeSync(fd);
      }
    });
    files.forEach((f, i) => { current = f.path; renameSync(temps[i], f.path); });
  } catch (e) {
    for (const t of written) if (lstatOrUndefined(t)) unlinkSync(t);
    fail('IO', `cannot write ${current}: ${ioReason(e)}`);
  }
}

/** Create a folder and its missing parents, one level at a time (mkdir's recursive mode loops
 *  forever where a parent exists but refuses children, as /proc does). */
function makeFolder(abs: string, dir: string, flag: string): void {
  const missing: string[] = [];
  let p = abs;
  for (; !lstatOrUndefined(p); p = dirname(p)) {
    missing.unshift(p);
    if (p === parsePath(p).root) break;
  }
  const cannot = (reason: string): never => fail('IO', `cannot create ${flag} ${dir}: ${reason}`);
  const st = lstatOrUndefined(p);
  if (st?.isSymbolicLink()) {
    let target: Stats | undefined;
    try {
      target = statSync(p);
    } catch (e) {
      cannot(`${p} is ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'a dangling symbolic link' : `a symbolic link that cannot be followed: ${ioReason(e)}`}`);
    }
    if (!target!.isDirectory()) cannot(`${p} is not a folder`);
  } else if (st && !st.isDirectory()) {
    cannot(`${p} is not a folder`);
  }
  for (const m of missing) {
    try {
      mkdirSync(m);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(m).isDirectory()) continue;
      // The parent exists: ENOENT there means a file system that takes no new folders (/proc).
      cannot(code === 'ENOENT' ? `the file system does not allow a folder there (ENOENT)` : ioReason(e));
    }
  }
}

/** The lock file of an output folder: it holds the writer's pid and host. */
export const LOCK_FILE = '.p2calib.lock';
const held = new Set<string>();
let exitHook = false;

function releaseAll(): void {
  for (const dir of held) releaseOutputDir(dir);
}

/** Take the folder's lock, or refuse when another live p2calib process holds it. The lock
 *  appears whole (written under a temp name, then hard-linked, which fails if it exists); one
 *  whose process no longer runs (on this host) is stale and taken over. */
function lockOutputDir(abs: string, dir: string, flag: string): void {
  if (held.has(abs)) return;
  const path = join(abs, LOCK_FILE);
  const temp = tempPath(path);
  try {
    const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
    try {
      writeSync(fd, `${process.pid} ${hostname()}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    fail('IO', `cannot write in ${flag} ${dir}: ${ioReason(e)}`);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(temp, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) fail('IO', `cannot lock ${flag} ${dir}: ${ioReason(e)}`);
      }
      let owner = '';
      try {
        owner = readFileSync(path, 'utf8');
      } catch {
        // Gone meanwhile: try again.
      }
      const [pid, host] = owner.trim().split(' ');
      if (!(Number(pid) > 0) || host !== hostname() || running(Number(pid))) {
        fail('IO', `${flag} ${dir} is being written by another p2calib run (pid ${pid}${host !== hostname() ? ` on ${host}` : ''}); if none is, remove ${path}`);
      }
      if (lstatOrUndefined(path)?.isFile()) unlinkSync(path);
    }
  } finally {
    unlinkSync(temp);
  }
  held.add(abs);
  if (!exitHook) {
    // The lock goes with the process, whatever way it exits (process.exit in a signal handler too).
    process.on('exit', releaseAll);
    exitHook = true;
  }
}

/** Give up the lock prepareOutputDir took (once the files are written). */
export function releaseOutputDir(abs: string): void {
  if (!held.delete(abs)) return;
  try {
    unlinkSync(join(abs, LOCK_FILE));
  } catch {
    // Removed by the user meanwhile.
  }
}

/**
 * Prepare an output folder and lock it for this process until releaseOutputDir (or exit): created
 * if missing; a non-empty one only with force. `owns(name)` tells which file names this write
 * produces: their temp files left by dead writers are removed first (they are not the user's
 * files); any other file, hidden or not, counts as the folder's content.
 */
export function prepareOutputDir(dir: string, force: boolean, flag = '--out', owns: (name: string) => boolean = () => false): string {
  const abs = resolve(dir);
  const st = lstatOrUndefined(abs);
  if (!st) {
    makeFolder(abs, dir, flag);
  } else {
    let target = st;
    if (st.isSymbolicLink()) {
      try {
        target = statSync(abs);
      } catch (e) {
        fail('IO', `${flag} ${dir} is ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'a dangling symbolic link' : `a symbolic link that cannot be followed: ${ioReason(e)}`}`);
      }
    }
    if (!target.isDirectory()) fail('IO', `${flag} ${dir} exists and is not a folder`);
  }
  let names: string[];
  try {
    names = readdirSync(abs);
  } catch (e) {
    fail('IO', `cannot read ${flag} ${dir}: ${ioReason(e)}`);
  }
  // A temp file named with this process's pid is a leftover of an earlier process that had the
  // same pid: this one writes its own only inside writeFilesAtomic, synchronously.
  const stale = (pid: number) => pid === process.pid || !running(pid);
  const entries = names.filter((name) => {
    if (name === LOCK_FILE) return false;
    const m = TEMP_FILE.exec(name);
    if (!m || !(m[1] === LOCK_FILE || owns(m[1])) || !stale(Number(m[2])) || !lstatOrUndefined(join(abs, name))?.isFile()) return true;
    unlinkSync(join(abs, name));
    return false;
  });
  lockOutputDir(abs, dir, flag);
  if (entries.length && !force) {
    releaseOutputDir(abs);
    fail('IO', `${flag} ${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); pass --force to overwrite its files`);
  }
  return abs;
}
