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
  const placed: { t: Lifetime; offset: number }[] = [];
  const offsets = new Map<string, number>();
  let size = 0;
  for (const t of sorted) {
    const bytes = Math.ceil(t.bytes / ALIGN) * ALIGN;
    const overlapping = placed
      .filter((p) => p.t.first <= t.last && t.first <= p.t.last)
      .sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const p of overlapping) {
      if (offset + bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + Math.ceil(p.t.bytes / ALIGN) * ALIGN);
    }
    placed.push({ t, offset });
    offsets.set(t.name, offset);
    size = Math.max(size, offset + bytes);
  }
  return { offsets, size };
}
