/**
 * Every problem caused by the user's input (a bad file, an unsupported op, a wrong flag)
 * surfaces as a P2Error with a stable `code`; the CLI prints its message as one line and
 * exits 2. Any other exception is a bug in p2calib.
 */
export type ErrorCode =
  | 'NOT_ONNX'          // bytes are not an ONNX model
  | 'TRUNCATED'         // the protobuf ends early
  | 'BAD_MODEL'         // structurally invalid model (cycles, dangling inputs, bad tensors)
  | 'EXTERNAL_DATA'     // tensor data stored outside the file and not provided
  | 'UNSUPPORTED'       // ops or features p2calib does not handle
  | 'SHAPE'             // dynamic dims without an input shape, or inconsistent shapes
  | 'TOO_LARGE'         // a tensor or plan beyond the memory limit
  | 'BAD_INPUT'         // wrong feeds given to run()/calibrate()
  | 'BAD_OPTION'        // invalid option or flag value
  | 'BAD_IMAGE'         // undecodable image
  | 'BAD_TRACE'         // malformed trace file or folder
  | 'IO';               // file system problem (missing file, refusing to overwrite)

/** Messages quote names taken from the user's files: control characters in them are escaped
 *  so that a message stays one line, and a message listing very many items is cut short. */
const MAX_MESSAGE = 1000;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const CONTROL_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g;
const escapeChar = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** Control characters (terminal escape codes among them) as \u escapes; `keepLines` leaves
 *  line feeds and tabs, for text made of several lines. */
export function escapeControl(text: string, keepLines = false): string {
  return text.replace(keepLines ? CONTROL_BUT_LINES : CONTROL, escapeChar);
}

export function oneLine(message: string): string {
  const s = escapeControl(message);
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 3)}...` : s;
}

export class P2Error extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(oneLine(message));
    this.name = 'P2Error';
    this.code = code;
  }
}

export function fail(code: ErrorCode, message: string): never {
  throw new P2Error(code, message);
}
