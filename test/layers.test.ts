// The folders of sdk/ and cli/ import each other in data-flow order (docs/DESIGN.md, "Layout"):
// no folder-level cycle, and the device's rules at the bottom (above only errors.ts and util/).
// A file directly in sdk/ or cli/ counts as a unit of its own; `import type` counts too.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.js';

/** `a.ts -> b.ts` for every relative import of the TypeScript sources under `dirs`. */
function importEdges(dirs: string[]): { from: string; to: string }[] {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(join(ROOT, d)).sort()) {
      const p = join(d, f);
      if (statSync(join(ROOT, p)).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) files.push(p);
    }
  };
  dirs.forEach(walk);
  const edges: { from: string; to: string }[] = [];
  // Static imports and re-exports at the start of a line (not in comments), dynamic imports.
  const spec = /^\s*(?:import|export)\b[^;']*?\bfrom\s*'(\.{1,2}\/[^']+)'|^\s*import\s*'(\.{1,2}\/[^']+)'|\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/gm;
  for (const from of files) {
    for (const m of readFileSync(join(ROOT, from), 'utf8').matchAll(spec)) {
      edges.push({ from, to: normalize(join(dirname(from), m[1] ?? m[2] ?? m[3])).replace(/\.js$/, '.ts') });
    }
  }
  return edges;
}

/** sdk/ops/conv.ts -> sdk/ops; sdk/model.ts -> sdk/model.ts. */
function unitOf(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? parts.slice(0, 2).join('/') : file;
}

/** The strongly connected components with more than one unit (Tarjan). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      on.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) out.push(scc.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

const EDGES = importEdges(['sdk', 'cli']);
const unitGraph = new Map<string, Set<string>>();
for (const { from, to } of EDGES) {
  const [a, b] = [unitOf(from), unitOf(to)];
  if (a === b) continue;
  if (!unitGraph.has(a)) unitGraph.set(a, new Set());
  unitGraph.get(a)!.add(b);
}

test('the import graph of sdk/ and cli/ has no folder-level cycle', () => {
  const found = cycles(unitGraph).map((scc) => {
    const inside = new Set(scc);
    const why = EDGES.filter((e) => inside.has(unitOf(e.from)) && inside.has(unitOf(e.to)) && unitOf(e.from) !== unitOf(e.to));
    return `${scc.join(' <-> ')}:\n    ${why.map((e) => `${e.from} -> ${relative('.', e.to)}`).join('\n    ')}`;
  });
  assert.equal(found, [], `folder-level import cycles:\n  ${found.join('\n  ')}`);
});

test('the device rules sit at the bottom, above only errors.ts and util/ (which import nothing)', () => {
  const base = ['sdk/errors.ts', 'sdk/util'];
  const allowed: Record<string, string[]> = { 'sdk/errors.ts': [], 'sdk/util': [], 'sdk/device': base };
  const up = EDGES.filter((e) => {
    const [a, b] = [unitOf(e.from), unitOf(e.to)];
    return a in allowed && a !== b && !allowed[a].includes(b);
  });
  assert.equal(up.map((e) => `${e.from} -> ${e.to}`), []);
});

test('the cycle finder finds cycles (a check that could not fail would prove nothing)', () => {
  const g = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])], ['d', new Set(['a'])]]);
  assert.equal(cycles(g), [['a', 'b', 'c']]);
  assert.equal(cycles(new Map([['a', new Set(['b'])], ['b', new Set<string>()]])), []);
  assert.is(unitOf('sdk/ops/conv.ts'), 'sdk/ops');
  assert.is(unitOf('sdk/model.ts'), 'sdk/model.ts');
  // The sources are really read: the engine imports the ops.
  assert.ok(unitGraph.get('sdk/engine')?.has('sdk/ops'));
});

test.run();
