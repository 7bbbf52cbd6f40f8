import { ErrorCodes, TapfitError } from '@tapfit/core';
import type { OnlineNorm } from './layer';

/** The plugin's checkpoint state: each OnlineNorm layer's call counters, in layer order. */
export type SavedCalls = { name: string; channels?: number; training: number; backward: number }[];

export function savedCallsOf(layers: readonly OnlineNorm[]): SavedCalls {
  return layers.map((l) => ({ name: l.name, channels: l.state.channels, training: l.state.trainingCalls, backward: l.state.backwardCalls }));
}

/**
 * The saved counters for `layers`, matched by position as core matches the model's
 * variables: tfjs numbers auto-generated layer names per process, so the same model built
 * again (a notebook, a retry, a server) has other names. Entries match when their count and
 * channel counts agree (checkpoints written before channels were saved match on count alone).
 */
export function matchSavedCalls(where: string, json: unknown, layers: readonly OnlineNorm[]): SavedCalls {
  const calls = (json as { calls?: unknown } | undefined)?.calls;
  const entry = (c: unknown): c is SavedCalls[number] => {
    const e = c as SavedCalls[number] | null;
    return typeof e?.name === 'string' && Number.isInteger(e.training) && Number.isInteger(e.backward) && (e.channels === undefined || Number.isInteger(e.channels));
  };
  if (!Array.isArray(calls) || !calls.every(entry)) {
    throw new TapfitError(ErrorCodes.CHECKPOINT, `${where}: the checkpoint's state is not a list of OnlineNorm call counters (got ${JSON.stringify(calls)?.slice(0, 200)}); resume from a checkpoint that ${where} wrote.`);
  }
  const mismatch = calls.length !== layers.length || calls.some((c, i) => c.channels !== undefined && c.channels !== layers[i].state.channels);
  if (mismatch) {
    const list = (entries: { name: string; channels?: number }[]) => JSON.stringify(entries.map((e) => (e.channels === undefined ? e.name : `${e.name} (${e.channels} channels)`)));
    throw new TapfitError(
      ErrorCodes.CHECKPOINT,
      `${where}: the checkpoint's state is for OnlineNorm layers ${list(calls)}, but this model has ${list(layers.map((l) => ({ name: l.name, channels: l.state.channels })))}. ` +
        `They are matched by position (layer names may differ between builds: tfjs numbers unnamed layers per process), so the count and channels must agree; ` +
        `resume with the model architecture and 'replace' selector that were saved.`,
    );
  }
  return calls;
}
