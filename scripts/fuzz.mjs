// The long fuzz run (npm run fuzz): seeded mutations of the generated models and, when
// ../shared/assets exists, of the shared models, thrown at the ONNX reader, loadModel,
// inspectModel and a float run; mutated trace folders thrown at the trace comparison, in memory
// and as hostile folders on disk (links out, dangling links, loops, FIFOs, devices, folders,
// sparse giants); and calibration folders whose calibration.json is edited (half the time with
// its hash recomputed), cut, or replaced by such entries, thrown at readCalibration, a
// fixed-point run and the QDQ export (test/fuzz.ts). Prints every finding (an exception that is
// not a one-line P2Error; for traces, any exception) with the seed and iteration that repeat it:
//   node scripts/fuzz.mjs --target models --seed S --only I
// The fuzzing runs in a worker under a watchdog: an iteration that takes longer than --hang
// seconds is reported as a hang, and the run goes on from the next iteration in a new worker.
//
// Flags: --seed N (default 1)  --iterations N (models, default 20000)  --trace-iterations N
//        (default 100000)  --trace-folder-iterations N (default 5000)  --calibration-iterations N
//        (default 5000)  --seconds N (time limit per target)  --target
//        models|traces|trace-folders|calibrations (one only)  --only I (one iteration)
//        --hang S (default 30)  --no-shared  --verbose (full stacks)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

if (isMainThread) {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: '1' },
      iterations: { type: 'string', default: '20000' },
      'trace-iterations': { type: 'string', default: '100000' },
      'trace-folder-iterations': { type: 'string', default: '5000' },
      'calibration-iterations': { type: 'string', default: '5000' },
      target: { type: 'string' },
      seconds: { type: 'string' },
      only: { type: 'string' },
      hang: { type: 'string', default: '30' },
      'no-shared': { type: 'boolean' },
      verbose: { type: 'boolean' },
    },
  });
  const seed = Number(values.seed);
  const only = values.only === undefined ? undefined : Number(values.only);
  const hangMs = Number(values.hang) * 1000;
  const targets = [
    ['models', Number(values.iterations)], ['traces', Number(values['trace-iterations'])],
    ['trace-folders', Number(values['trace-folder-iterations'])], ['calibrations', Number(values['calibration-iterations'])],
  ]
    .filter(([t]) => !values.target || values.target === t);
  let failed = false;
  for (const [target, iterations] of targets) failed = (await fuzzTarget(target, iterations)) || failed;
  process.exitCode = failed ? 1 : 0;

  async function fuzzTarget(target, iterations) {
    const last = only ?? iterations - 1;
    const deadline = values.seconds === undefined ? undefined : Date.now() + Number(values.seconds) * 1000;
    const started = Date.now();
    const total = { iterations: 0, outcomes: {}, findings: 0, slow: [], hangs: [], seeds: 0 };
    const seen = new Map();

    const report = (f) => {
      total.findings++;
      // One report per distinct place: the error's first line and its innermost frame.
      const lines = f.error.split('\n');
      const key = `${lines[0]} ${lines.find((l) => l.trim().startsWith('at ')) ?? ''}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      if (seen.get(key) === 1 || values.verbose) {
        console.log(`finding: ${target} seed ${seed} iteration ${f.iteration} (${f.seed}; ${f.mutation.join(', ')}) in ${f.stage}`);
        console.log(values.verbose ? f.error : lines.slice(0, 4).join('\n'));
      }
    };

    // One worker per stretch of iterations; a hang ends the stretch and the next one starts after it.
    let next = only ?? 0;
    while (next <= last && (deadline === undefined || Date.now() < deadline)) {
      next = await new Promise((resolve, reject) => {
        const worker = new Worker(new URL(import.meta.url), {
          workerData: { target, seed, first: next, last, deadline, only, shared: !values['no-shared'] },
        });
        let current = next, since = Date.now(), finished = false;
        const watchdog = setInterval(() => {
          if (Date.now() - since <= hangMs) return;
          finished = true;
          total.hangs.push(current);
          console.log(`hang: ${target} seed ${seed} iteration ${current} ran longer than ${hangMs / 1000} s`);
          clearInterval(watchdog);
          worker.terminate().then(() => resolve(current + 1));
        }, 1000);
        worker.on('message', (m) => {
          if (m.type === 'ready') total.seeds = m.seeds;
          else if (m.type === 'iteration') [current, since] = [m.i, Date.now()];
          else if (m.type === 'finding') report(m.finding);
          else if (m.type === 'outcome') {
            total.iterations++;
            total.outcomes[m.outcome] = (total.outcomes[m.outcome] ?? 0) + 1;
          } else if (m.type === 'stats') {
            finished = true;
            clearInterval(watchdog);
            total.slow.push(...m.stats.slow);
            resolve(last + 1);
          }
        });
        worker.on('error', (e) => { clearInterval(watchdog); reject(e); });
        worker.on('exit', (code) => {
          if (finished) return;
          // A crash of the whole worker (e.g. out of memory) counts like a hang: go on after it.
          clearInterval(watchdog);
          total.hangs.push(current);
          console.log(`crash: ${target} seed ${seed} iteration ${current} ended its worker (exit code ${code})`);
          resolve(current + 1);
        });
      });
    }

    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`${target}: ${total.iterations + total.hangs.length} iterations over ${total.seeds} seeds in ${secs} s (seed ${seed})`);
    console.log(`  outcomes: ${Object.entries(total.outcomes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    for (const s of total.slow) console.log(`  slow: iteration ${s.iteration} (${s.seed}; ${s.mutation.join(', ')}) took ${s.ms} ms`);
    console.log(`  findings: ${total.findings} (${seen.size} distinct), hangs or crashes: ${total.hangs.length}`);
    return total.findings > 0 || total.hangs.length > 0;
  }
} else {
  const fuzz = await import('../dist/test/fuzz.js');
  const { SHARED_MODELS, MODELS, HAVE_ASSETS } = await import('../dist/test/helpers.js');
  const { target, seed, first, last, deadline, only, shared } = workerData;
  let seeds;
  if (target === 'traces' || target === 'trace-folders') {
    seeds = fuzz.traceSeeds();
  } else if (target === 'calibrations') {
    seeds = await fuzz.calibrationSeeds();
  } else {
    seeds = fuzz.generatedSeeds();
    if (HAVE_ASSETS && shared) {
      for (const m of SHARED_MODELS) {
        const path = join(MODELS, m.file);
        if (existsSync(path)) seeds.push({ name: m.file, bytes: readFileSync(path), shape: m.shape });
      }
    }
  }
  parentPort.postMessage({ type: 'ready', seeds: seeds.length });
  const run = { models: fuzz.fuzzModels, traces: fuzz.fuzzTraces, 'trace-folders': fuzz.fuzzTraceFolders, calibrations: fuzz.fuzzCalibrations }[target];
  const stats = await run(seeds, {
    seed, first, only,
    iterations: last + 1,
    seconds: deadline === undefined ? undefined : Math.max(0, (deadline - Date.now()) / 1000),
    onIteration: (i) => parentPort.postMessage({ type: 'iteration', i }),
    onFinding: (finding) => parentPort.postMessage({ type: 'finding', finding }),
    onOutcome: (i, outcome) => parentPort.postMessage({ type: 'outcome', i, outcome }),
  });
  parentPort.postMessage({ type: 'stats', stats });
}
