// The design notes live in the repository and the code's citations of them resolve: every
// "DESIGN.md §N" in the sources names a section docs/DESIGN.md has, and every file path the notes
// name exists (a rename that leaves the notes behind fails here).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.js';

const DESIGN = readFileSync(join(ROOT, 'docs/DESIGN.md'), 'utf8');
const SECTIONS = new Set([...DESIGN.matchAll(/^## (\d+)\. /gm)].map((m) => m[1]));

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).sort().flatMap((f) => {
    const p = join(dir, f);
    if (statSync(join(ROOT, p)).isDirectory()) return sources(p);
    return /\.(ts|mjs|md)$/.test(p) ? [p] : [];
  });
}

test('the sections of docs/DESIGN.md the code cites exist', () => {
  const cited: string[] = [];
  for (const file of [...['sdk', 'cli', 'assembly', 'test', 'scripts', 'bench'].flatMap(sources), 'README.md']) {
    for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(/DESIGN\.md[^§\n]{0,3}§(\d+)/g)) {
      cited.push(`${file}: §${m[1]}`);
      if (!SECTIONS.has(m[1])) assert.unreachable(`${file} cites DESIGN.md §${m[1]}, which docs/DESIGN.md lacks`);
    }
  }
  assert.ok(cited.length > 5, `expected the code to cite DESIGN.md, found ${cited.length}`);
  assert.ok(SECTIONS.size >= 6);
});

test('the paths docs/DESIGN.md names exist', () => {
  const named = [...DESIGN.matchAll(/`((?:sdk|assembly|test|scripts|bench|cli)\/[\w./-]+)`/g)].map((m) => m[1]);
  assert.ok(named.length > 5);
  const missing = named.filter((p) => !existsSync(join(ROOT, p.replace(/\/$/, ''))));
  assert.equal(missing, []);
});

test.run();
