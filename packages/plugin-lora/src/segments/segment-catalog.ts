import type * as tf from '@tensorflow/tfjs';
import type { TrainableModel } from '@tapfit/core';

/** One variable of a segment model, as selectors and reports see it. */
export interface VariableEntry {
  /** 'segment/name'; unnamed variables (tfjs ids) are 'segment/param<i>' by position. */
  readonly path: string;
  readonly segment: string;
  readonly variable: tf.Variable;
  /** Set when LoRA cannot adapt the variable. */
  readonly unsupported?: string;
  /**
   * In the output head: the last segment that has a 2-D float32 variable (segments after
   * it hold only 1-D or no variables, like weightless layers). 'output' selects it,
   * 'all-linear' skips it.
   */
  readonly isHead: boolean;
}

/** Variables that are some LoRA's adapter weights (never base weights to adapt). */
export const adapterVariables = new WeakSet<tf.Variable>();
/** Base variables a live segment LoRA adapts (adapting them twice would stack updates silently). */
export const adaptedVariables = new WeakSet<tf.Variable>();

/** tfjs names unnamed variables by a global counter, which differs between runs. */
const AUTO_NAME = /^\d+$/;

/**
 * A name scoped under its own segment's name, possibly with a counter (a layer weight
 * 'block_3/kernel' in segment 'block'), without that scope: the counter is what tfjs or a
 * model builder adds to keep names unique within the process, so it differs between two
 * builds of one model, and paths must not.
 */
function withinSegment(segment: string, name: string): string {
  const slash = name.indexOf('/');
  const scope = slash > 0 ? name.slice(0, slash) : undefined;
  if (scope === undefined) return name;
  const counter = scope.startsWith(`${segment}_`) && /^\d+$/.test(scope.slice(segment.length + 1));
  return scope === segment || counter ? name.slice(slash + 1) : name;
}

/**
 * Every base variable of a segment model, in segment order. A variable that several
 * segments share is listed once, under the first.
 */
export function segmentCatalog(model: TrainableModel): VariableEntry[] {
  const seen = new Set<tf.Variable>();
  const out: { path: string; segment: string; variable: tf.Variable; unsupported?: string }[] = [];
  for (const s of model.segments) {
    s.params.forEach((v, i) => {
      if (seen.has(v) || adapterVariables.has(v)) return;
      seen.add(v);
      const local = AUTO_NAME.test(v.name) ? `param${i}` : withinSegment(s.name, v.name);
      const unsupported =
        v.rank !== 2 ? `${v.rank}-D [${v.shape.join(', ')}]; LoRA on segments adapts 2-D weights [in, out]` : v.dtype !== 'float32' ? `dtype ${v.dtype}; LoRA adapts float32 weights` : undefined;
      out.push({ path: `${s.name}/${local}`, segment: s.name, variable: v, unsupported });
    });
  }
  const head = [...out].reverse().find((e) => !e.unsupported)?.segment;
  return out.map((e) => ({ ...e, isHead: e.segment === head }));
}

/** The variables a plan names, by path (the plan was made from this model's catalog). */
export function entriesByPath(model: TrainableModel): Map<string, VariableEntry> {
  return new Map(segmentCatalog(model).map((e) => [e.path, e]));
}
