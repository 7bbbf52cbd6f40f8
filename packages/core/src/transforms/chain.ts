import { ErrorCodes, TapfitError } from '../errors';
import type { NamedTensors } from '../tensors';
import { parseOptions, transformName } from '../options';
import type { StepContext, StepTransform, TransformState } from './types';

/** A chain's state: each member's state under the member's name. */
export type ChainState = { [memberName: string]: TransformState };

/** A StepTransform that runs its members in order; `transforms` lists them. */
export interface Chain extends StepTransform<ChainState> {
  readonly transforms: readonly StepTransform[];
}

/**
 * Compose transforms: each member receives the previous member's updates. The chain's
 * state is `{ [member.name]: memberState }`, so `state.momentum.velocity` is readable and
 * a checkpoint names every member. Pass a string first to name the chain (default 'chain').
 */
export function chain(...members: StepTransform[]): Chain;
export function chain(name: string, ...members: StepTransform[]): Chain;
export function chain(...args: Array<string | StepTransform>): Chain {
  const named = typeof args[0] === 'string';
  const name = named ? (args[0] as string) : 'chain';
  const transforms = Object.freeze(args.slice(named ? 1 : 0) as StepTransform[]);
  checkName(`chain('${name}')`, name);
  checkMembers(name, transforms);
  const self: Chain = {
    name,
    transforms,
    init(params: NamedTensors): ChainState {
      const state: ChainState = {};
      for (const t of transforms) state[t.name] = t.init(params);
      return state;
    },
    update(updates: NamedTensors, state: ChainState, params: NamedTensors, ctx: StepContext) {
      const next: ChainState = {};
      // Only the last member may fold a final scale into the parameter write (StepContext.fold).
      const { fold, ...plain } = ctx;
      const folds = fold?.target === self;
      for (const [i, t] of transforms.entries()) {
        const own = state[t.name];
        if (own === undefined) {
          throw new TapfitError(
            ErrorCodes.STATE,
            `chain '${name}': the state has no entry for member '${t.name}' (it has: ${listNames(Object.keys(state))}). ` +
              'The state was made for a different chain; call init(params) on this chain or load a matching state.',
          );
        }
        const last = folds && i === transforms.length - 1;
        if (last) fold.target = t;
        [updates, next[t.name]] = t.update(updates, own, params, last ? { ...plain, fold } : plain);
      }
      return [updates, next];
    },
  };
  return self;
}

/** Whether `t` is a chain (has members that find/replace helpers can walk). */
export function isChain(t: StepTransform): t is Chain {
  return Array.isArray((t as Partial<Chain>).transforms);
}

function checkName(who: string, name: unknown): void {
  parseOptions(who, transformName, name);
}

function checkMembers(chainName: string, members: readonly StepTransform[]): void {
  members.forEach((t, i) => {
    if (typeof t !== 'object' || t === null || typeof t.init !== 'function' || typeof t?.update !== 'function') {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `chain '${chainName}': member ${i} is not a StepTransform (it needs name, init and update). ` +
          'Pass transforms such as momentum(...) or scaleByLearningRate(...), not their options.',
      );
    }
    checkName(`chain '${chainName}': member ${i} name`, t.name);
  });
  const positions = new Map<string, number[]>();
  members.forEach((t, i) => positions.set(t.name, [...(positions.get(t.name) ?? []), i]));
  const duplicates = [...positions].filter(([, at]) => at.length > 1);
  if (duplicates.length > 0) {
    const which = duplicates.map(([n, at]) => `'${n}' (members ${at.join(', ')})`).join(', ');
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `chain '${chainName}': duplicate transform name(s) ${which}. Names key the chain state, so each must be ` +
        'unique; pass { name: ... } to one of them.',
    );
  }
}

export function listNames(names: readonly string[]): string {
  return names.length === 0 ? 'none' : names.map((n) => `'${n}'`).join(', ');
}
