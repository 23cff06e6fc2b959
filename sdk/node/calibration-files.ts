/** A calibration on disk: model.qdq.onnx, model.calibrated.onnx and calibration.json in one folder. */
import { join, resolve } from 'node:path';
import { Calibration, loadCalibration } from '../calibration.js';
import { fail } from '../errors.js';
import { check, checkModel, checkPath, options as optionsOf } from '../guard.js';
import type { QdqRounding } from '../export/qdq.js';
import { INTEGRITY_FIELD, tableJson, type CalibrationTable } from '../export/table.js';
import type { Model } from '../model.js';
import { prepareOutputDir, readFileOrFail, releaseOutputDir, writeFilesAtomic } from './files.js';

export const CALIBRATION_FILES = { qdq: 'model.qdq.onnx', calibrated: 'model.calibrated.onnx', table: 'calibration.json' } as const;

export interface SaveOptions {
  /** Overwrite the files of a non-empty folder. */
  force?: boolean;
  /** The QDQ model's rounding at ties (Calibration.toQdqOnnx). */
  rounding?: QdqRounding;
}

const NAMES = new Set<string>(Object.values(CALIBRATION_FILES));

/** Prepare (and lock) a calibration's output folder: see prepareOutputDir. */
export function prepareCalibrationDir(outDir: string, force: boolean, flag = '--out'): string {
  return prepareOutputDir(outDir, force, flag, (name) => NAMES.has(name));
}

export function saveCalibration(cal: Calibration, outDir: string, given?: SaveOptions): { qdq: string; calibrated: string; table: string } {
  check(cal instanceof Calibration, 'saveCalibration', 'the first argument must be a Calibration (from calibrate or loadCalibration)');
  checkPath(outDir, 'saveCalibration', 'the output folder');
  const options = optionsOf(given, 'saveCalibration');
  const dir = prepareCalibrationDir(outDir, !!options.force);
  const files = {
    qdq: join(dir, CALIBRATION_FILES.qdq),
    calibrated: join(dir, CALIBRATION_FILES.calibrated),
    table: join(dir, CALIBRATION_FILES.table),
  };
  // One set: an interrupted run leaves the old three files or the new three.
  try {
    writeFilesAtomic([
      { path: files.qdq, data: cal.toQdqOnnx({ rounding: options.rounding }) },
      { path: files.calibrated, data: cal.toCalibratedOnnx() },
      { path: files.table, data: tableJson(cal.table) },
    ]);
  } finally {
    releaseOutputDir(dir);
  }
  return files;
}

/** Far beyond the table of any real model (a few MB), and short of what a string can hold. */
export const MAX_TABLE_BYTES = 256 * 2 ** 20;

/**
 * Load the calibration.json of a folder for the model it was made from. The file must be a
 * regular file (not a device or a FIFO, also behind a link) carrying the hash p2calib wrote.
 */
export function readCalibration(model: Model, dir: string): Calibration {
  checkModel(model, 'readCalibration');
  checkPath(dir, 'readCalibration', 'the calibration folder');
  const path = resolve(dir, CALIBRATION_FILES.table);
  const bytes = readFileOrFail(path, CALIBRATION_FILES.table, MAX_TABLE_BYTES);
  let table: CalibrationTable;
  try {
    table = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    fail('BAD_INPUT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (table?.format === 'p2calib-calibration' && !Object.hasOwn(table, INTEGRITY_FIELD)) {
    fail('BAD_INPUT', `${path} has no "${INTEGRITY_FIELD}" hash: it was not written by this version of p2calib, or was edited (recalibrate)`);
  }
  return loadCalibration(model, table);
}
