import { ErrorCodes, TapfitError } from '@tapfit/core';

// Every error of this package names the plugin ('lora: ...'), the option, layer or
// variable involved, and the fix.

/** A bad option, selector or layer configuration: the call has to change. */
export function configError(message: string): TapfitError {
  return new TapfitError(ErrorCodes.CONFIG, `lora: ${message}`);
}

/** The model is in the wrong state for the call (merged, no adapter active, disposed). */
export function stateError(message: string): TapfitError {
  return new TapfitError(ErrorCodes.STATE, `lora: ${message}`);
}

/** A layer's input shape does not fit its kernel. */
export function shapeError(message: string): TapfitError {
  return new TapfitError(ErrorCodes.SHAPE, `lora: ${message}`);
}

/** An adapter directory cannot be read or written. */
export function adapterFileError(message: string): TapfitError {
  return new TapfitError(ErrorCodes.CHECKPOINT, `lora: ${message}`);
}
