import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { P2Error } from '../sdk/errors.js';
import { classificationLabels, labelFile, openDataset, shuffle } from '../sdk/node/datasets.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-ds-'));
const touch = (rel: string) => {
  const p = join(dir, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, 'x');
};
['cats/b.jpg', 'cats/a.PNG', 'dogs/deep/c.webp', 'dogs/d.jpeg', '.hidden/e.jpg', 'cats/notes.txt', 'x.bmp'].forEach(touch);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.instance(e, P2Error);
    return (e as P2Error).code;
  }
  return 'none';
}

test('a folder: recursive, sorted, image extensions only (any case), hidden entries skipped', () => {
  const ds = openDataset(dir);
  assert.equal(ds.files.map((f) => f.slice(dir.length + 1)), ['cats/a.PNG', 'cats/b.jpg', 'dogs/d.jpeg', 'dogs/deep/c.webp']);
});

test('seeded shuffle is a deterministic permutation; limit applies after it', () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const a = shuffle(items, 7), b = shuffle(items, 7), c = shuffle(items, 8);
  assert.equal(a, b);
  assert.not.equal(a, c);
  assert.not.equal(a, items);
  assert.equal([...a].sort((x, y) => x - y), items);
  const all = openDataset(dir, { seed: 3 });
  assert.equal(openDataset(dir, { seed: 3, limit: 2 }).files, all.files.slice(0, 2));
  assert.is(openDataset(dir, { limit: 1 }).files.length, 1);
});

test('a list file: paths relative to it, comments and blanks skipped, missing files reported with the line', () => {
  writeFileSync(join(dir, 'list.txt'), '# calibration set\ncats/b.jpg\n\n  dogs/d.jpeg  \n');
  assert.equal(openDataset(join(dir, 'list.txt')).files, [join(dir, 'cats/b.jpg'), join(dir, 'dogs/d.jpeg')]);
  writeFileSync(join(dir, 'bad.txt'), 'cats/b.jpg\ncats/zzz.jpg\n');
  try {
    openDataset(join(dir, 'bad.txt'));
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /bad\.txt:2: image not found: cats\/zzz\.jpg/);
  }
  assert.is(code(() => openDataset(join(dir, 'nope'))), 'IO');
  assert.is(code(() => openDataset(join(dir, '.hidden'))), 'none'); // a folder given explicitly is searched
  mkdirSync(join(dir, 'empty'));
  assert.is(code(() => openDataset(join(dir, 'empty'))), 'IO');
});

test('class sub-folders give sorted class indices; integer folder names are the indices', () => {
  assert.equal(classificationLabels(openDataset(dir)), [0, 0, 1, 1]);
  const num = mkdtempSync(join(tmpdir(), 'p2calib-num-'));
  for (const f of ['0/a.jpg', '7/b.jpg']) {
    mkdirSync(join(num, f, '..'), { recursive: true });
    writeFileSync(join(num, f), 'x');
  }
  assert.equal(classificationLabels(openDataset(num)), [0, 7]);
  assert.equal(classificationLabels(openDataset(dir), ['dogs', 'cats']), [1, 1, 0, 0]);
  writeFileSync(join(num, 'top.jpg'), 'x');
  assert.is(code(() => classificationLabels(openDataset(num))), 'BAD_OPTION');
  rmSync(num, { recursive: true });
});

test('label files are found by relative path, then by base name', () => {
  const labels = join(dir, 'labels');
  mkdirSync(join(labels, 'cats'), { recursive: true });
  writeFileSync(join(labels, 'cats/a.txt'), '');
  writeFileSync(join(labels, 'd.txt'), '');
  const ds = openDataset(dir);
  assert.equal(ds.files.map((f) => labelFile(ds, f, labels, '.txt')?.slice(labels.length + 1)), ['cats/a.txt', undefined, 'd.txt', undefined]);
});

test.after(() => rmSync(dir, { recursive: true }));
test.run();
