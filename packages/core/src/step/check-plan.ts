import { ErrorCodes, TapfitError } from '../errors';
import { MEMORY_POLICIES, type MemoryPlan } from './memory-plan';

/**
 * What a `planMemory` tap returns: one entry per segment of the model, by name, each with a
 * known policy. Checked tap by tap, so a bad plan names the plugin at setup instead of
 * failing at the first step in the executor.
 */
export function checkMemoryPlan(plan: MemoryPlan, segmentNames: readonly string[], plugin: string): void {
  const fail = (why: string): never => {
    throw new TapfitError(ErrorCodes.PLUGIN_FAILED, `plugin '${plugin}' returned a memory plan that ${why} from hook 'planMemory'. Return the plan it was given, with policies changed.`);
  };
  if (!plan || !Array.isArray(plan.segments) || !Array.isArray(plan.extraBytes)) fail('is not { segments, extraBytes }');
  const names = plan.segments.map((s) => s?.name);
  if (names.join('\u0000') !== segmentNames.join('\u0000')) fail(`lists segments [${names.join(', ')}] where the model has [${segmentNames.join(', ')}]`);
  const bad = plan.segments.find((s) => !MEMORY_POLICIES.includes(s.policy));
  if (bad) fail(`gives segment '${bad.name}' the unknown policy '${String(bad.policy)}' (use one of ${MEMORY_POLICIES.join(', ')})`);
}
