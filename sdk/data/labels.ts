/** Class labels from names (pure string work, shared by Node and browsers; reading files is the
 *  caller's: sdk/node/datasets.ts in Node). */
import { fail } from '../errors.js';

/** One class name per line (wnids like n01440764, folder names, ...), in class order. */
export function parseClassList(text: string, where = 'class list'): string[] {
  const names = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (!names.length) fail('BAD_OPTION', `${where} is empty`);
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) fail('BAD_OPTION', `${where} names "${n}" twice`);
    seen.add(n);
  }
  return names;
}

/** The class key of an image from its path relative to the dataset root: an ImageNet wnid prefix
 *  of its file name ("n01440764_x.JPEG"), otherwise its top-level folder (one folder per class). */
export function classKey(relativePath: string): string {
  const parts = relativePath.split(/[\\/]/);
  return /^(n\d{8})_/.exec(parts[parts.length - 1])?.[1] ?? (parts.length > 1 ? parts[0] : '');
}

/** Index of each image's class key in the class list (paths relative to the dataset root). */
export function labelsFromList(paths: string[], classes: string[]): number[] {
  const index = new Map(classes.map((n, i) => [n, i]));
  return paths.map((p) => {
    const k = classKey(p);
    const i = index.get(k);
    if (i === undefined) fail('BAD_OPTION', `${p}: class "${k}" (from its file or folder name) is not in the class list`);
    return i;
  });
}
