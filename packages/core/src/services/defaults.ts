import 'reflect-metadata'; // tsyringe needs it loaded before any decorator runs
import * as tf from '@tensorflow/tfjs';
import { injectable } from 'tsyringe';
import type { ModelInfo } from '../hooks/types';
import { storeAllPlan, type MemoryPlan } from '../memory/plan';
import type { Backprop, Clock, Logger, MemoryPlanner } from './tokens';

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
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }
}

@injectable()
export class StoreAllPlanner implements MemoryPlanner {
  plan(info: ModelInfo): MemoryPlan {
    return storeAllPlan(info.segmentNames);
  }
}

/** Plain autodiff of the whole step (every segment `store`). */
@injectable()
export class AutodiffBackprop implements Backprop {
  compute(loss: (forward: () => tf.Tensor) => tf.Scalar, forward: () => tf.Tensor, variables: readonly tf.Variable[]) {
    const { value, grads } = tf.variableGrads(() => loss(forward), variables as tf.Variable[]);
    return { value, grads };
  }
}
