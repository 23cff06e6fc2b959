/**
 * The last `size` results computed for an owner object and a key, most recently used kept: for
 * pure computations that a pass repeats with mostly the same arguments (mixed precision's
 * candidates). Callers read the results and never write them.
 */
export function remembered<O extends object, T>(memo: WeakMap<O, Map<string, T>>, owner: O, key: string, size: number, compute: () => T): T {
  let m = memo.get(owner);
  if (!m) memo.set(owner, (m = new Map()));
  let v = m.get(key);
  if (v === undefined) {
    v = compute();
    if (m.size >= size) m.delete(m.keys().next().value!);
  } else {
    m.delete(key);
  }
  m.set(key, v);
  return v;
}
