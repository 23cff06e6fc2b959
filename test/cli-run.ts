/** Running the real CLI (dist/cli/main.js) in a child process, and what its errors must look like. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.js';

export const CLI = join(ROOT, 'dist/cli/main.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Node flags before the script (e.g. --import of a fault-injection module). */
  nodeArgs?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Start the CLI; `onStart` gets the child (e.g. to kill it at some point). */
export function runCli(args: string[], onStart?: (child: ChildProcess) => void, options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], env: options.env ? { ...process.env, ...options.env } : process.env,
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    onStart?.(child);
  });
}

export function stderrLines(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => l.length > 0);
}

/** Exit code 2, exactly one line on stderr, "p2calib: error: ..." matching `message`, no stack. */
export function assertUserError(r: CliResult, message: RegExp, what = ''): void {
  const lines = stderrLines(r);
  assert.is(r.code, 2, `${what}: exit code ${r.code}, stderr: ${r.stderr}`);
  assert.is(lines.length, 1, `${what}: one stderr line expected, got:\n${r.stderr}`);
  assert.match(lines[0], /^p2calib: error: /, what);
  assert.not.match(r.stderr, /^\s+at /m, `${what}: no stack trace`);
  assert.match(lines[0], message, what);
}
