import type { DependencyContainer } from 'tsyringe';
import { ErrorCodes, TapfitError } from '../errors';
import { pluginsDecorating } from '../plugin/plugin-api';
import { Tokens } from '../services/tokens';
import type { LossName } from '../train/losses';
import { coreLossName, DATA_PARALLEL_PLUGIN } from './replicable';

/** `'a'` or `plugins 'a', 'b'`, as the refusals name them. */
export function namePlugins(plugins: readonly string[]): string {
  return `plugin${plugins.length > 1 ? 's' : ''} ${plugins.map((p) => `'${p}'`).join(', ')}`;
}

/**
 * The core loss name the replica workers compute, or undefined when they compute the
 * setupModule's `loss` instead. The main thread computes the trainer's loss as resolved
 * (`Tokens.Loss`, with every plugin's decoration); a function cannot cross threads, so a
 * decorated loss reaches the workers only as setupModule's `loss`. Without one the
 * decoration would apply to the main thread's part alone (an L2 penalty at 1/replicas of
 * its weight, silently): refused, naming the decorating plugins.
 */
export function workerLoss(container: DependencyContainer, setupModule: string | undefined): LossName | undefined {
  const decorators = pluginsDecorating(container, Tokens.Loss);
  if (decorators.length) {
    if (setupModule !== undefined) return undefined;
    throw new TapfitError(
      ErrorCodes.PLUGIN_CONFLICTS,
      `${DATA_PARALLEL_PLUGIN}: ${namePlugins(decorators)} decorated the trainer's loss (Tokens.Loss); the decorated loss is a function, which cannot cross threads, so the replica workers would compute the undecorated loss and the decoration would reach the main thread's part of each batch only. ` +
        "Export the decorated loss as `loss` from a module given as dataParallel's setupModule (every replica then computes it), or train without dataParallel or without that plugin.",
    );
  }
  const name = coreLossName(container.resolve(Tokens.Loss));
  if (name === undefined && setupModule === undefined) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${DATA_PARALLEL_PLUGIN}: the trainer's loss is a function, which cannot cross threads to the replica workers. Pass a core loss name (e.g. 'softmaxCrossEntropy'), or export the function as \`loss\` from a module given as setupModule.`,
    );
  }
  return name;
}
