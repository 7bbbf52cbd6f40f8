import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError, type Backprop, type Segment, type StepGradients, type StepRequest } from '@tapfit/core';
import type { StageSpec } from './partition';
import { runSegments, single, stageBackward, withWeights } from './stage-math';
import { WeightHistory, type MotionSource } from './weight-history';
import type { Prediction } from './weight-prediction';

export interface SimulatorOptions {
  prediction: Prediction;
  /** Backward with the forward's weights instead of the current ones (pure delay, no inconsistency). */
  weightStashing: boolean;
  /** Where the velocity-form prediction reads the momentum buffer and the learning rate. */
  motion?: MotionSource | undefined;
}

/** A stage bound to the model's variables. */
export interface BoundStage extends StageSpec {
  /** Its trainable variables (each belongs to exactly one stage). */
  readonly variables: readonly tf.Variable[];
}

/**
 * Pipelined Backpropagation simulated in one process (docs/techniques.md §5.2), as a
 * core `Backprop`. Step t runs micro-batch t through every stage:
 *
 * - forward of stage s with the weights recorded D_s updates ago (or their prediction),
 *   swapped in for the stage's forward and swapped back after;
 * - backward of stage s, last to first: the VJP of the stage at (its stashed input, its
 *   current weights), re-running the stage with `ctx.recomputing = true` (with
 *   `weightStashing`, at the forward's weights); the last stage differentiates the loss.
 *   A stage with D_s = 0 (the last one) runs forward and backward once, taped;
 * - the gradients go back to the trainer, whose chain applies them at once: every stage
 *   updates at step t with micro-batch t's gradient.
 *
 * With one stage (D = 0) this is plain autodiff of the model.
 */
export class PipelineSimulator implements Backprop {
  private readonly histories: (WeightHistory | undefined)[];
  /** Micro-batches processed (the pipeline's tick); checkpointed. */
  tick = 0;
  /** Bytes of each stage's stashed input in the last step. */
  readonly stashBytes: number[];

  constructor(
    readonly stages: readonly BoundStage[],
    private readonly options: SimulatorOptions,
  ) {
    this.histories = stages.map((s) => (s.delay > 0 ? new WeightHistory(s.index, s.delay, s.variables, options.prediction) : undefined));
    this.stashBytes = stages.map(() => 0);
  }

  compute(request: StepRequest): StepGradients {
    const { x, y, ctx, loss } = request;
    const t = this.tick;
    const segmentsOf = (s: BoundStage): Segment[] => request.segments.slice(s.start, s.end);
    this.histories.forEach((h) => h?.record(t, this.options.motion));
    const forwardWeights = (i: number) => this.histories[i]?.forwardWeights(t);
    const last = this.stages.length - 1;

    // Forward: each stage at its old (or predicted) weights; the inputs are the stash.
    const inputs: tf.Tensor[][] = [];
    let xs = [x];
    for (let i = 0; i <= last; i++) {
      const stage = this.stages[i];
      if (i > 0) xs = [single(xs, `stage ${i} (segments ${this.stages[i - 1].segments.join(', ')})`)];
      inputs.push(xs);
      this.stashBytes[i] = xs.reduce((s, a) => s + a.size * 4, 0);
      if (i === last && stage.delay === 0) break;
      const old = forwardWeights(i)!;
      xs = withWeights(stage.variables, old, () => tf.tidy(() => runSegments(segmentsOf(stage), xs, ctx)));
    }

    // Backward, last stage first, each at its current weights (or the forward's, when stashing).
    const grads: Record<string, tf.Tensor> = {};
    let dys: (tf.Tensor | null)[] = [];
    let value: tf.Scalar | undefined;
    for (let i = last; i >= 0; i--) {
      const stage = this.stages[i];
      const once = i === last && stage.delay === 0; // forward and backward in one taped run
      const backwardCtx = once ? ctx : { ...ctx, recomputing: true };
      const head = i === last ? { loss, y } : { dys };
      const run = () => stageBackward(segmentsOf(stage), stage.variables, inputs[i], backwardCtx, i > 0, head);
      const r = this.options.weightStashing && !once ? withWeights(stage.variables, forwardWeights(i)!, run) : run();
      if (i === last) value = once ? r.value! : (tf.dispose(r.value!), loss(y, single(xs, `stage ${i + 1}`)));
      dys = r.dxs;
      stage.variables.forEach((v, k) => {
        const g = r.grads[k];
        if (g) grads[v.name] = g;
      });
    }
    this.histories.forEach((h) => h?.release(t));
    this.tick = t + 1;
    return { value: value!, grads };
  }

  /** The held weight versions per stage (for checkpoints and memory figures). */
  history(stage: number): WeightHistory | undefined {
    return this.histories[stage];
  }

  /** Bytes of the held weight versions of stage i (0-based). */
  versionBytes(i: number): number {
    return this.histories[i]?.bytes ?? 0;
  }

  dispose(): void {
    this.histories.forEach((h) => h?.dispose());
  }
}

/** Checks that each trainable variable is read by one stage only. */
export function bindStages(stages: readonly StageSpec[], segments: readonly Segment[], trainable: ReadonlySet<tf.Variable>): BoundStage[] {
  const owner = new Map<tf.Variable, number>();
  return stages.map((s) => {
    const variables: tf.Variable[] = [];
    for (const seg of segments.slice(s.start, s.end)) {
      for (const v of seg.params) {
        if (!trainable.has(v)) continue;
        const other = owner.get(v);
        if (other !== undefined && other !== s.index) {
          throw new TapfitError(
            ErrorCodes.CONFIG,
            `pipeline: variable '${v.name}' is read by stage ${other} and stage ${s.index} (segment '${seg.name}'); each stage owns its weights, so put the segments that share it in one stage (boundaries option).`,
          );
        }
        if (other === undefined) {
          owner.set(v, s.index);
          variables.push(v);
        }
      }
    }
    return { ...s, variables };
  });
}
