/**
 * Corrupt calibration.json files: every field the loader reads, replaced by values of every other
 * JSON type, gives a BAD_INPUT naming the problem (or loads, where the value still fits); through
 * the CLI, one line and exit code 2.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrate, loadCalibration } from '../sdk/calibration.js';
import { P2Error } from '../sdk/errors.js';
import { tableHash, type CalibrationTable } from '../sdk/export/table.js';
import { loadModel } from '../sdk/model.js';
import { noise } from './bad-models.js';
import { assertUserError, runCli } from './cli-run.js';
import { buildModel, node, randomArray, randomTensor } from './helpers.js';

const bytes = buildModel({
  inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], outputs: [{ name: 'y' }],
  nodes: [node('Conv', ['x', 'w', 'b'], ['c'], { pads: [1, 1, 1, 1] }), node('Relu', ['c'], ['r']), node('Conv', ['r', 'w2'], ['y'])],
  initializers: { w: randomTensor([4, 3, 3, 3], 1), b: randomTensor([4], 2), w2: randomTensor([2, 4, 1, 1], 3) },
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value, descending into the first entry of each object and array. */
function paths(v: Json, prefix: string[] = []): string[][] {
  if (v === null || typeof v !== 'object') return [prefix];
  const keys = Array.isArray(v) ? (v.length ? ['0'] : []) : Object.keys(v);
  const inner = keys.flatMap((k, i) => (Array.isArray(v) || prefix.length < 1 || i === 0 ? paths((v as Record<string, Json>)[k], [...prefix, k]) : [[...prefix, k]]));
  return [prefix, ...inner];
}

function replaced(table: Json, path: string[], value: Json): Json {
  const copy = structuredClone(table);
  if (!path.length) return value;
  let o = copy as Record<string, Json>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, Json>;
  o[path[path.length - 1]] = value;
  return copy;
}

test('every field of a calibration.json replaced by another type: BAD_INPUT or a load, never a TypeError', async () => {
  const model = await loadModel(bytes);
  const cal = await calibrate(model, [randomArray(192, 1), randomArray(192, 2)], { preset: 'simple' });
  const table = JSON.parse(JSON.stringify(cal.table)) as Json;
  const all = paths(table);
  assert.ok(all.length > 30, `${all.length} paths`);
  let refused = 0;
  for (const path of all) {
    for (const value of [null, 'x', [], {}, -1, 1e300, true, [1, 2, 3]] as Json[]) {
      try {
        loadCalibration(model, replaced(table, path, value) as unknown as CalibrationTable);
      } catch (e) {
        if (!(e instanceof P2Error)) throw new Error(`${path.join('.')} = ${JSON.stringify(value)}: ${(e as Error).stack}`);
        assert.is(e.code === 'BAD_INPUT' || e.code === 'BAD_OPTION', true, e.message);
        refused++;
      }
    }
  }
  assert.ok(refused > all.length, `${refused} refusals`);
});

test('eval --calibration with a corrupt calibration.json: one line, exit 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2calib-harden-cal-'));
  try {
    writeFileSync(join(dir, 'model.onnx'), bytes);
    mkdirSync(join(dir, 'images'));
    writeFileSync(join(dir, 'images', 'a.png'), await sharp(Buffer.from(noise(8 * 8 * 3, 1)), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer());
    const model = await loadModel(bytes);
    const table = (await calibrate(model, [randomArray(192, 1)], { preset: 'simple' })).table;
    const args = ['eval', join(dir, 'model.onnx'), '--task', 'generic', '--images', join(dir, 'images'), '--preprocess', 'imagenet', '--size', '8x8', '--calibration', join(dir, 'cal')];
    mkdirSync(join(dir, 'cal'));
    const name = Object.keys(table.layers)[0];
    // With its hash recomputed, the edit reaches the field checks.
    const edited = JSON.parse(JSON.stringify({ ...table, layers: { ...table.layers, [name]: { ...table.layers[name], bias: 'zero' } } }));
    writeFileSync(join(dir, 'cal', 'calibration.json'), JSON.stringify({ ...edited, integrity: tableHash(edited) }));
    assertUserError(await runCli(args), new RegExp(`calibration\\.json: "layers\\.${name}\\.bias" must be a list of numbers`));
    writeFileSync(join(dir, 'cal', 'calibration.json'), '{"format": "p2calib-calibr');
    assertUserError(await runCli(args), /calibration\.json is not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
