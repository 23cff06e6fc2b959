/**
 * The SDK's public functions check the kind of their arguments first: a wrong one (null, a
 * string for bytes, a plain array for a Float32Array) is a BAD_INPUT naming the function and what
 * it takes, never a TypeError from deep inside.
 */
import { fail } from './errors.js';

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function check(ok: unknown, where: string, want: string): asserts ok {
  if (!ok) fail('BAD_INPUT', `${where}: ${want}`);
}

/** Options may be left out (undefined or null); otherwise an object. */
export function options<T extends object>(v: T | null | undefined, where: string): Partial<T> {
  check(v === undefined || v === null || isRecord(v), where, 'options must be an object');
  return v ?? {};
}

/** Callbacks among the options (onProgress, onSkip, ...) are functions when given. */
export function checkCallbacks(o: object, names: string[], where: string): void {
  for (const name of names) {
    const f = (o as Record<string, unknown>)[name];
    check(f === undefined || typeof f === 'function', where, `${name} must be a function`);
  }
}

export function checkPath(v: unknown, where: string, what: string): asserts v is string {
  check(typeof v === 'string' && v.length > 0, where, `${what} must be a path (a non-empty string)`);
}

/** Feeds: one Float32Array, or a record of them by input name. */
export function checkFeeds(feeds: unknown, where: string): void {
  if (feeds instanceof Float32Array) return;
  check(isRecord(feeds), where, 'feeds must be a Float32Array or a record of Float32Arrays by input name');
  for (const [name, v] of Object.entries(feeds)) check(v instanceof Float32Array, where, `input "${name}" must be a Float32Array`);
}

export function checkIterable(v: unknown, where: string, what: string): void {
  check(typeof v === 'object' && v !== null && (Symbol.iterator in v || Symbol.asyncIterator in v), where, `${what} must be an array or an iterable`);
}

/** A Model (from loadModel), told apart by its methods (instanceof would tie this module to the class). */
export function checkModel(v: unknown, where: string): void {
  check(isRecord(v) && typeof v.prepared === 'function' && typeof v.floatPlan === 'function', where, 'the model must be a Model (from loadModel)');
}

/** A batch size: a positive integer, or the model's own first input dim (undefined for a model
 *  whose first input is a scalar). */
export function checkBatch(batch: unknown, model: unknown, where: string): void {
  const own = (model as { inputs?: { shape: number[] }[] })?.inputs?.[0]?.shape[0];
  check(batch === own || (Number.isInteger(batch) && (batch as number) >= 1), where, `the batch size must be a positive integer, got ${String(batch)}`);
}
