/** Labels for evaluation, from file names, folders and label files (parsing only; reading files
 *  is the caller's: sdk/node/datasets.ts in Node). */
import { fail } from '../errors.js';

/** One wnid per line (e.g. "n01440764"), in class order. */
export function parseWnids(text: string, where = 'wnid list'): Map<string, number> {
  const ids = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (!ids.length) fail('BAD_OPTION', `${where}: no wnids`);
  const m = new Map<string, number>();
  ids.forEach((w, i) => {
    if (!/^n\d{8}$/.test(w)) fail('BAD_OPTION', `${where}: line ${i + 1} "${w}" is not a wnid like n01440764`);
    if (m.has(w)) fail('BAD_OPTION', `${where}: wnid ${w} appears twice`);
    m.set(w, i);
  });
  return m;
}

/** The class of an ImageNet file named "<wnid>_<anything>" (or inside a folder named by its wnid). */
export function wnidLabel(path: string, wnids: Map<string, number>): number {
  const m = /(?:^|[\\/])(n\d{8})(?=[_\\/.])[^\\/]*$/.exec(path) ?? /(?:^|[\\/])(n\d{8})[\\/][^\\/]+$/.exec(path);
  if (!m) fail('BAD_OPTION', `${path}: no wnid (like n01440764_...) in the file name or folder`);
  const label = wnids.get(m[1]);
  if (label === undefined) fail('BAD_OPTION', `${path}: wnid ${m[1]} is not in the wnid list`);
  return label;
}
