/**
 * A few seconds of seeded fuzzing (test/fuzz.ts): mutated generated models (always) and mutated
 * shared models (with ../shared/assets) through decodeModel, inspectModel, loadModel and a float
 * run (only P2Errors may come out), mutated trace folders through the trace comparison (no
 * exception at all), in memory and as hostile folders on disk, and hostile calibration folders
 * through readCalibration, a fixed-point run and the export (only P2Errors). A finding names the seed and iteration that repeat it (node
 * scripts/fuzz.mjs --seed S --only I [--target traces]). Longer runs: npm run fuzz.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrationSeeds, fuzzCalibrations, fuzzModels, fuzzTraceFolders, fuzzTraces, generatedSeeds, traceSeeds, type FuzzStats, type Seed } from './fuzz.js';
import { MODELS, SHARED_MODELS, assetTest } from './helpers.js';

function assertClean(stats: FuzzStats, seed: number): void {
  const f = stats.findings[0];
  assert.ok(!f, f && `seed ${seed} iteration ${f.iteration} (${f.seed}; ${f.mutation.join(', ')}) in ${f.stage}: ${f.error}`);
}

test('fuzzed generated models: only typed errors, over every outcome', async () => {
  const seed = 20240611;
  const stats = await fuzzModels(generatedSeeds(), { seed, iterations: 1500 });
  assertClean(stats, seed);
  // The mutations reach every stage: refused by the reader, by validation, by the op modules,
  // and accepted models that then run.
  for (const outcome of ['ok', 'NOT_ONNX', 'TRUNCATED', 'BAD_MODEL', 'UNSUPPORTED', 'SHAPE', 'TOO_LARGE']) {
    assert.ok((stats.outcomes[outcome] ?? 0) > 0, `no "${outcome}" outcome in ${JSON.stringify(stats.outcomes)}`);
  }
});

assetTest(test, 'fuzzed shared models: only typed errors', async () => {
  const seeds: Seed[] = SHARED_MODELS.map((m) => ({ name: m.file, bytes: readFileSync(join(MODELS, m.file)), shape: m.shape }));
  const seed = 7;
  const stats = await fuzzModels(seeds, { seed, iterations: 25 });
  assertClean(stats, seed);
  assert.ok((stats.outcomes.ok ?? 0) > 0, JSON.stringify(stats.outcomes));
});

test('fuzzed trace folders: compare reports problems, never throws', async () => {
  const seed = 5;
  const stats = await fuzzTraces(traceSeeds(), { seed, iterations: 3000 });
  assertClean(stats, seed);
  for (const outcome of ['match', 'mismatch', 'problems']) {
    assert.ok((stats.outcomes[outcome] ?? 0) > 0, `no "${outcome}" outcome in ${JSON.stringify(stats.outcomes)}`);
  }
});

test('fuzzed trace folders on disk (links, FIFOs, folders, giants): compare lists what it cannot read', async () => {
  const seed = 3;
  const stats = await fuzzTraceFolders(traceSeeds(), { seed, iterations: 100 });
  assertClean(stats, seed);
  for (const outcome of ['unreadable', 'problems', 'match']) {
    assert.ok((stats.outcomes[outcome] ?? 0) > 0, `no "${outcome}" outcome in ${JSON.stringify(stats.outcomes)}`);
  }
});

test('fuzzed calibration folders: edited (rehashed or not), cut and replaced calibration.json give typed errors or load and run', async () => {
  const seed = 9;
  const stats = await fuzzCalibrations(await calibrationSeeds(), { seed, iterations: 250 });
  assertClean(stats, seed);
  for (const outcome of ['ok', 'BAD_INPUT', 'IO']) {
    assert.ok((stats.outcomes[outcome] ?? 0) > 0, `no "${outcome}" outcome in ${JSON.stringify(stats.outcomes)}`);
  }
});

test.run();
