import 'reflect-metadata'; // tsyringe needs it loaded before any decorator runs
import * as tf from '@tensorflow/tfjs';
import { injectable } from 'tsyringe';
import type { ModelInfo } from '../hooks/types';
import { runForward } from '../step/forward-pass';
import { storeAllPlan, type MemoryPlan } from '../step/memory-plan';
import type { StepGradients, StepRequest } from '../step/step-request';
import type { Backprop, Logger, MemoryPlanner } from './tokens';

@injectable()
export class ConsoleLogger implements Logger {
  info(message: string): void {
    console.log(message);
  }
  warn(message: string): void {
    console.warn(message);
  }
}

/** A logger that drops everything (tests, benchmarks). */
export class SilentLogger implements Logger {
  info(): void {}
  warn(): void {}
}

@injectable()
export class StoreAllPlanner implements MemoryPlanner {
  plan(info: ModelInfo): MemoryPlan {
    return storeAllPlan(info.segmentNames);
  }
}

/** Plain autodiff of the whole step: one tape over the request's forward (every segment `store`). */
@injectable()
export class AutodiffBackprop implements Backprop {
  compute({ x, y, segments, ctx, variables, loss }: StepRequest): StepGradients {
    return tf.variableGrads(() => loss(y, runForward({ segments, ctx }, x)), variables as tf.Variable[]);
  }
}
