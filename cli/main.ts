#!/usr/bin/env node
/** p2calib command line: dispatches to a command module, maps errors to exit codes
 *  (2: the user's input, 1: a bug in p2calib). */
import { format } from 'node:util';
import { escapeControl, oneLine, P2Error } from '../sdk/errors.js';
import { TOOL_VERSION } from '../sdk/version.js';
import { nearest } from './args.js';

interface Command { help: string; run(argv: string[]): Promise<number> }

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  inspect: { summary: 'show a model\'s inputs, outputs, ops and parameters', load: () => import('./commands/inspect.js') },
  demo: { summary: 'the built-in demo: calibrate PP-OCR\'s text-direction classifier on rendered text lines', load: () => import('./commands/demo.js') },
  calibrate: { summary: 'calibrate a float model on images; write QDQ, calibrated float ONNX and calibration.json', load: () => import('./commands/calibrate.js') },
  eval: { summary: 'measure a model\'s accuracy on images (float, and fixed point with --calibration)', load: () => import('./commands/eval.js') },
  simulate: { summary: 'run one image in fixed point and write every layer as TIDL trace files', load: () => import('./commands/simulate.js') },
  report: { summary: 'write the layer-by-layer HTML report of a calibration (and its table as CSV)', load: () => import('./commands/report.js') },
  compare: { summary: 'compare two folders of TIDL trace files layer by layer', load: () => import('./commands/compare.js') },
};

const USAGE = `p2calib — power-of-2 post-training calibration for TI TIDL deployment

Usage: p2calib <command> [options]    (p2calib <command> --help for details)
       p2calib --version

Commands:
${Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(10)} ${c.summary}`).join('\n')}`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  if (name === '--version') {
    console.log(`p2calib ${TOOL_VERSION}`);
    return 0;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    const near = nearest(name, Object.keys(COMMANDS));
    throw new P2Error('BAD_OPTION', `unknown command "${name}" (${near ? `did you mean ${near}? ` : ''}commands: ${Object.keys(COMMANDS).join(', ')})`);
  }
  const code = await (await cmd.load()).run(rest);
  // A signal that came during the last synchronous stretch (the output renames) is waiting in
  // the event loop, whose turns run the handler below (it reports the signal and exits) instead
  // of the process ending with 0 as if none had come. Its callback can take a second turn to run
  // (measured with worker threads just ended); three leave a margin.
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
  return code;
}

// Ctrl-C, kill and a closed terminal end the run between two steps instead of wherever the signal
// lands: output files are written synchronously (sdk/node/files.ts), so an interrupted run leaves
// the old files or the complete new set, never a partial file, a stray temp file or its lock.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => {
    console.error(`p2calib: interrupted (${signal})`);
    process.exit(code);
  });
}

// Everything the commands print goes through console.log, and names in models and folders can
// carry terminal escape codes or carriage returns: they reach the terminal as \u escapes (JSON
// strings stay valid JSON, whose \u escapes are the same characters).
const print = console.log;
console.log = (...args: unknown[]) => print(escapeControl(format(...args), true));

const verbose = process.argv.includes('--verbose');
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (e instanceof P2Error) {
      console.error(`p2calib: error: ${e.message}`);
      if (verbose) console.error(e.stack);
      process.exitCode = 2;
    } else {
      const err = e as Error;
      console.error(`p2calib: internal error: ${oneLine(String(err?.message ?? e))}${verbose ? '' : ' (run with --verbose for details)'}`);
      if (verbose) console.error(err?.stack);
      process.exitCode = 1;
    }
  },
);
