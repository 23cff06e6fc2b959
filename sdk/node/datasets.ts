/**
 * Image datasets in Node: a folder (searched recursively) or a list file, in a deterministic
 * order, optionally shuffled with a seed and cut to a limit; and the labels that go with them
 * for evaluation (class lists, class sub-folders, YOLO box files, segmentation masks).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fail, P2Error } from '../errors.js';
import { checkCallbacks, checkPath, options as optionsOf } from '../guard.js';
import { labelsFromList, parseClassList } from '../data/labels.js';
import { ioReason, readFileOrFail } from './files.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif'];

/** Files that cannot be used (not images, undecodable, empty, too large) are skipped and
 *  reported to `onSkip`, one line each; with `strict` the first one is an error instead. */
export interface SkipPolicy {
  strict?: boolean;
  onSkip?: (message: string) => void;
}

/** Skip an image that failed with BAD_IMAGE (reporting it), or rethrow the error. */
export function skipImage(policy: SkipPolicy, error: unknown): void {
  if (policy.strict || !(error instanceof P2Error) || error.code !== 'BAD_IMAGE') throw error;
  policy.onSkip?.(`${error.message} (skipped)`);
}

export interface DatasetOptions extends SkipPolicy {
  /** Shuffle with this seed (otherwise: sorted by path). */
  seed?: number;
  /** Keep at most this many images (after shuffling). */
  limit?: number;
}

export interface Dataset {
  /** Folder the relative paths are relative to (the folder given, or the list file's folder). */
  root: string;
  /** Absolute image paths in evaluation order. */
  files: string[];
}

/** Deterministic uniform numbers in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates with a seeded generator: the same seed gives the same order on every machine. */
export function shuffle<T>(items: T[], seed: number): T[] {
  const r = seededRandom(seed);
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Image files under a folder, sorted; other files go to `others`, sub-folders that cannot be
 *  listed to `unreadable`. Links to folders are not followed (no loops); links to files are,
 *  when the image is read. */
function walk(dir: string, out: string[], others: string[], unreadable: string[], top = true): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if (top) fail('IO', `cannot read the images folder ${dir}: ${ioReason(e)}`);
    unreadable.push(`cannot read the folder ${dir}: ${ioReason(e)}`);
    return;
  }
  for (const e of entries.sort((a, b) => byPath(a.name, b.name))) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out, others, unreadable, false);
    else if (IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) out.push(p);
    else others.push(p);
  }
}

/**
 * The images of a folder (recursive, hidden entries skipped) or of a list file (one path per line,
 * relative to the list file's folder; blank lines and lines starting with # are skipped).
 */
export function openDataset(source: string, given?: DatasetOptions): Dataset {
  checkPath(source, 'openDataset', 'the images');
  const options = optionsOf(given, 'openDataset');
  checkCallbacks(options, ['onSkip'], 'openDataset');
  const abs = resolve(source);
  if (!existsSync(abs)) fail('IO', `images not found: ${source}`);
  let root: string, files: string[];
  if (statSync(abs).isDirectory()) {
    root = abs;
    files = [];
    const others: string[] = [], unreadable: string[] = [];
    walk(abs, files, others, unreadable);
    for (const message of unreadable) {
      if (options.strict) fail('BAD_IMAGE', message);
      options.onSkip?.(`${message} (skipped)`);
    }
    if (others.length) {
      const names = others.slice(0, 3).map((f) => relative(abs, f)).join(', ');
      if (options.strict) fail('BAD_IMAGE', `${join(source, relative(abs, others[0]))} is not an image file (${IMAGE_EXTENSIONS.join(' ')})`);
      options.onSkip?.(`${others.length} file${others.length > 1 ? 's' : ''} in ${source} ${others.length > 1 ? 'are' : 'is'} not an image (${names}${others.length > 3 ? ', ...' : ''}) (skipped)`);
    }
    if (!files.length) fail('IO', `no images (${IMAGE_EXTENSIONS.join(' ')}) in ${source}`);
  } else {
    root = dirname(abs);
    const text = new TextDecoder().decode(readFileOrFail(abs, 'image list'));
    files = [];
    text.split(/\r?\n/).forEach((line, i) => {
      const l = line.trim();
      if (!l || l.startsWith('#')) return;
      const p = resolve(root, l);
      if (!existsSync(p)) fail('IO', `${source}:${i + 1}: image not found: ${l}`);
      files.push(p);
    });
    if (!files.length) fail('IO', `the image list ${source} names no images`);
  }
  if (options.seed !== undefined) files = shuffle(files, options.seed);
  if (options.limit !== undefined) files = files.slice(0, options.limit);
  return { root, files };
}

/**
 * Class index per image for classification. With a class list: the position of the image's
 * class key in it. Without: class sub-folders of the dataset root, numbered in sorted order
 * (or by their names when every name is an integer).
 */
export function classificationLabels(ds: Dataset, classList?: string[]): number[] {
  if (classList) return labelsFromList(ds.files.map((f) => relative(ds.root, f)), classList);
  const folders = ds.files.map((f) => relative(ds.root, dirname(f)).split(sep)[0]);
  if (folders.some((d) => !d)) {
    fail('BAD_OPTION', 'images lie directly in the images folder: pass --labels with a class list (e.g. imagenet-wnids.txt), or put images in one sub-folder per class');
  }
  const names = [...new Set(folders)].sort(byPath);
  if (names.every((n) => /^\d+$/.test(n))) return folders.map(Number);
  const index = new Map(names.map((n, i) => [n, i]));
  return folders.map((d) => index.get(d)!);
}

/** The label file of an image in a labels folder: same relative path, else same base name, with
 *  the given extension; undefined if neither exists. */
export function labelFile(ds: Dataset, image: string, labelDir: string, ext: string): string | undefined {
  const rel = relative(ds.root, image);
  const stem = (p: string) => p.slice(0, p.length - extname(p).length);
  for (const cand of [join(labelDir, stem(rel) + ext), join(labelDir, stem(basename(rel)) + ext)]) {
    if (existsSync(cand)) return cand;
  }
  return undefined;
}

/** A class list file (one name per line). */
export function readClassList(path: string): string[] {
  return parseClassList(readText(path, 'class list'), `the class list ${path}`);
}

export function readText(path: string, what: string): string {
  return new TextDecoder().decode(readFileOrFail(path, what));
}

export function requireDir(path: string | undefined, what: string): string {
  if (!path) fail('BAD_OPTION', `${what}: pass --labels DIR`);
  if (!existsSync(path) || !statSync(path).isDirectory()) fail('IO', `${what}: ${path} is not a folder`);
  return resolve(path);
}
