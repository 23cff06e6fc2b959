/**
 * Static memory plan: every runtime tensor gets a fixed offset in one arena, reused by tensors
 * whose lifetimes do not overlap. Greedy by size (largest first, lowest fitting offset), which is
 * what TFLite's arena planner does and lands close to the peak of live bytes on CNNs.
 */

export interface Lifetime {
  name: string;
  bytes: number;
  /** Step that writes it (-1 for model inputs) and last step that reads it. */
  first: number;
  last: number;
}

export interface ArenaPlan {
  offsets: Map<string, number>;
  size: number;
}

const ALIGN = 16;

export function planArena(tensors: Lifetime[]): ArenaPlan {
  const sorted = [...tensors].sort((a, b) => b.bytes - a.bytes || a.first - b.first || (a.name < b.name ? -1 : 1));
  const offsets = new Map<string, number>();
  const aligned = (t: Lifetime) => Math.ceil(t.bytes / ALIGN) * ALIGN;
  // Placed tensors listed under every step they live through: finding the ones a tensor overlaps
  // reads only its own steps, so that long chains of short-lived tensors plan in linear time.
  let lo = 0, hi = 0;
  for (const t of sorted) [lo, hi] = [Math.min(lo, t.first), Math.max(hi, t.last)];
  const alive: number[][] = Array.from({ length: hi - lo + 1 }, () => []);
  const placedOffset: number[] = [];
  const seenBy = new Int32Array(sorted.length).fill(-1);
  let size = 0;
  sorted.forEach((t, k) => {
    const bytes = aligned(t);
    const overlapping: number[] = [];
    for (let step = t.first; step <= t.last; step++) {
      for (const j of alive[step - lo]) {
        if (seenBy[j] !== k) [seenBy[j], overlapping[overlapping.length]] = [k, j];
      }
    }
    overlapping.sort((a, b) => placedOffset[a] - placedOffset[b]);
    let offset = 0;
    for (const j of overlapping) {
      if (offset + bytes <= placedOffset[j]) break;
      offset = Math.max(offset, placedOffset[j] + aligned(sorted[j]));
    }
    placedOffset[k] = offset;
    for (let step = t.first; step <= t.last; step++) alive[step - lo].push(k);
    offsets.set(t.name, offset);
    size = Math.max(size, offset + bytes);
  });
  return { offsets, size };
}
