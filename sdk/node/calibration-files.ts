/** A calibration on disk: model.qdq.onnx, model.calibrated.onnx and calibration.json in one folder. */
import { join, resolve } from 'node:path';
import { Calibration, loadCalibration } from '../calibration.js';
import { fail } from '../errors.js';
import { check, checkModel, checkPath, isRecord, options as optionsOf } from '../guard.js';
import type { QdqRounding } from '../export/qdq.js';
import { INTEGRITY_FIELD, checkTableHash, tableJson, type CalibrationTable } from '../export/table.js';
import type { Model } from '../model.js';
import { lstatOrUndefined, prepareOutputDir, readFileOrFail, releaseOutputDir, writeFilesAtomic } from './files.js';

export const CALIBRATION_FILES = {
  qdq: 'model.qdq.onnx', calibrated: 'model.calibrated.onnx', table: 'calibration.json', tidl: 'tidl_quant_params.prototxt',
} as const;

export interface SaveOptions {
  /** Overwrite the files of a non-empty folder. */
  force?: boolean;
  /** The QDQ model's rounding at ties (Calibration.toQdqOnnx). */
  rounding?: QdqRounding;
}

export type SavedFiles = Record<keyof typeof CALIBRATION_FILES, string>;

const NAMES = new Set<string>(Object.values(CALIBRATION_FILES));

/** Prepare (and lock) a calibration's output folder: see prepareOutputDir. */
export function prepareCalibrationDir(outDir: string, force: boolean, flag = '--out'): string {
  return prepareOutputDir(outDir, force, flag, (name) => NAMES.has(name));
}

export function saveCalibration(cal: Calibration, outDir: string, given?: SaveOptions): SavedFiles {
  check(cal instanceof Calibration, 'saveCalibration', 'the first argument must be a Calibration (from calibrate or loadCalibration)');
  checkPath(outDir, 'saveCalibration', 'the output folder');
  const options = optionsOf(given, 'saveCalibration');
  const dir = prepareCalibrationDir(outDir, !!options.force);
  const files = Object.fromEntries(Object.entries(CALIBRATION_FILES).map(([k, f]) => [k, join(dir, f)])) as SavedFiles;
  // One set: an interrupted run leaves the old files or the new ones.
  try {
    writeFilesAtomic([
      { path: files.qdq, data: cal.toQdqOnnx({ rounding: options.rounding }) },
      { path: files.calibrated, data: cal.toCalibratedOnnx() },
      { path: files.table, data: tableJson(cal.table) },
      { path: files.tidl, data: cal.toTidlQuantParams() },
    ]);
  } finally {
    releaseOutputDir(dir);
  }
  return files;
}

/** Far beyond the table of any real model (a few MB), and short of what a string can hold. */
export const MAX_TABLE_BYTES = 256 * 2 ** 20;

/**
 * calibration.json of a calibration folder, parsed and checked against the hash p2calib wrote in
 * it (loadCalibration checks its fields). It must be a regular file (not a device or a FIFO, also
 * behind a link).
 */
export function readCalibrationTable(dir: string): CalibrationTable {
  checkPath(dir, 'readCalibrationTable', 'the calibration folder');
  const path = resolve(dir, CALIBRATION_FILES.table);
  if (!lstatOrUndefined(path)) fail('IO', `no ${CALIBRATION_FILES.table} in ${dir}`);
  const bytes = readFileOrFail(path, CALIBRATION_FILES.table, MAX_TABLE_BYTES);
  let table: CalibrationTable;
  try {
    table = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    fail('BAD_INPUT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (table?.format === 'p2calib-calibration') {
    if (!Object.hasOwn(table, INTEGRITY_FIELD)) fail('BAD_INPUT', `${path} has no "${INTEGRITY_FIELD}" hash: it was not written by this version of p2calib, or was edited (recalibrate)`);
    // Checked here too: the commands read the provenance before loading the calibration.
    checkTableHash(table as unknown as Record<string, unknown>);
  }
  return table;
}

/** Load a calibration folder (or its table, from readCalibrationTable) for the model it was made from. */
export function readCalibration(model: Model, dir: string | CalibrationTable): Calibration {
  checkModel(model, 'readCalibration');
  check(typeof dir === 'string' || isRecord(dir), 'readCalibration', 'give the calibration folder or its table');
  return loadCalibration(model, typeof dir === 'string' ? readCalibrationTable(dir) : dir);
}

/** The input shape a calibration was made at, for a single-input model (its provenance). */
export function recordedInputShape(table: CalibrationTable): number[] | undefined {
  const shapes = Object.values(table.provenance?.inputShape ?? {});
  return shapes.length === 1 && Array.isArray(shapes[0]) && shapes[0].every((d) => Number.isInteger(d) && d > 0) ? shapes[0] : undefined;
}
