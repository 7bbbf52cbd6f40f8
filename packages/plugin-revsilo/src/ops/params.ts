import * as tf from '@tensorflow/tfjs';

export type Initializer = ReturnType<typeof tf.initializers.zeros>;

/** How a parameter starts: zeros, ones, or normal with a standard deviation (seeded). */
export type Init = 'zeros' | 'ones' | { readonly stddev: number };

export interface ParamSpec {
  /** Name within the block, e.g. 'f0_1/expand/kernel'. */
  readonly name: string;
  readonly shape: number[];
  readonly init: Init;
  /** Default true; normalisation statistics are false. */
  readonly trainable?: boolean | undefined;
}

/**
 * Creates a block's variables. Blocks ask for their parameters in a fixed order and the
 * k-th random one gets seed `seed + k`, so two builds with the same seed start from the
 * same weights whether the variables are plain `tf.Variable`s or tfjs-layers weights
 * (reversible and stored twins, a layers model and its segments).
 */
export interface ParamFactory {
  create(spec: ParamSpec): tf.Variable;
  /** The same factory with names under `prefix/`. */
  scope(prefix: string): ParamFactory;
}

/** The tfjs initializer for `init` (used by both kinds of factory, so their values agree). */
export function initializerOf(init: Init, seed: number): Initializer {
  if (init === 'zeros') return tf.initializers.zeros();
  if (init === 'ones') return tf.initializers.ones();
  return tf.initializers.randomNormal({ mean: 0, stddev: init.stddev, seed });
}

type Sink = (name: string, shape: number[], initializer: Initializer, trainable: boolean) => tf.Variable;

class ScopedFactory implements ParamFactory {
  constructor(
    private readonly sink: Sink,
    private readonly prefix: string,
    private readonly counter: { next: number },
  ) {}

  create(spec: ParamSpec): tf.Variable {
    const seed = this.counter.next++;
    const name = this.prefix ? `${this.prefix}/${spec.name}` : spec.name;
    return this.sink(name, spec.shape, initializerOf(spec.init, seed), spec.trainable ?? true);
  }

  scope(prefix: string): ParamFactory {
    return new ScopedFactory(this.sink, this.prefix ? `${this.prefix}/${prefix}` : prefix, this.counter);
  }
}

let uid = 0;

/** Plain `tf.Variable`s named `<prefix>/<name>_<n>` (TF.js variable names are global, hence the counter). */
export function variableFactory(prefix: string, seed = 1): ParamFactory {
  const sink: Sink = (name, shape, initializer, trainable) => tf.variable(tf.tidy(() => initializer.apply(shape, 'float32')), trainable, `${name}_${uid++}`);
  return new ScopedFactory(sink, prefix, { next: seed });
}

/** Weights of a tfjs-layers layer (`addWeight`), so `model.save` carries them. */
export function layerFactory(layer: tf.layers.Layer, seed = 1): ParamFactory {
  const sink: Sink = (name, shape, initializer, trainable) => {
    // addWeight's regularizer slot is unused here; the layer owns the variable.
    const w = (layer as unknown as { addWeight: AddWeight }).addWeight(name, shape, 'float32', initializer, undefined, trainable);
    return w.read() as tf.Variable;
  };
  return new ScopedFactory(sink, '', { next: seed });
}

type AddWeight = (name: string, shape: number[], dtype: 'float32', initializer: Initializer, regularizer: undefined, trainable: boolean) => { read(): tf.Tensor };
