/** A calibration on disk: model.qdq.onnx, model.calibrated.onnx and calibration.json in one folder. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadCalibration, type Calibration } from '../calibration.js';
import { fail } from '../errors.js';
import type { QdqRounding } from '../export/qdq.js';
import { tableJson, type CalibrationTable } from '../export/table.js';
import type { Model } from '../model.js';
import { prepareOutputDir, writeFilesAtomic } from './files.js';

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

export function saveCalibration(cal: Calibration, outDir: string, options: SaveOptions = {}): SavedFiles {
  const dir = prepareOutputDir(outDir, !!options.force);
  const files = Object.fromEntries(Object.entries(CALIBRATION_FILES).map(([k, f]) => [k, join(dir, f)])) as SavedFiles;
  // One set: an interrupted run leaves the old files or the new ones.
  writeFilesAtomic([
    { path: files.qdq, data: cal.toQdqOnnx({ rounding: options.rounding }) },
    { path: files.calibrated, data: cal.toCalibratedOnnx() },
    { path: files.table, data: tableJson(cal.table) },
    { path: files.tidl, data: cal.toTidlQuantParams() },
  ]);
  return files;
}

/** calibration.json of a calibration folder, parsed (loadCalibration checks its fields). */
export function readCalibrationTable(dir: string): CalibrationTable {
  const path = resolve(dir, CALIBRATION_FILES.table);
  if (!existsSync(path)) fail('IO', `no ${CALIBRATION_FILES.table} in ${dir}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail('BAD_INPUT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
}

export function readCalibration(model: Model, dir: string | CalibrationTable): Calibration {
  return loadCalibration(model, typeof dir === 'string' ? readCalibrationTable(dir) : dir);
}

/** The input shape a calibration was made at, for a single-input model (its provenance). */
export function recordedInputShape(table: CalibrationTable): number[] | undefined {
  const shapes = Object.values(table.provenance?.inputShape ?? {});
  return shapes.length === 1 && Array.isArray(shapes[0]) && shapes[0].every((d) => Number.isInteger(d) && d > 0) ? shapes[0] : undefined;
}
