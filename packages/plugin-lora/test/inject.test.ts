import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { applyLora, applyLoraToSegments, formatPlan, lora, type LoraPlan, planLora, resolveSpec } from '../src';
import { cnn, functional, maxAbsDiff, mlp, sameValues, thrown, useCpu } from './helpers';
import { denseSegments, disposeModel } from './segment-helpers';

const adapted = (plan: LoraPlan | { plan: LoraPlan | null }) => ('adapted' in plan ? plan : plan.plan!).adapted.map((l) => l.path);

describe('applyLora: target selection', () => {
  useCpu();
  let base: tf.LayersModel;
  let fn: tf.LayersModel;
  before(() => {
    base = mlp();
    fn = functional();
  });
  after(() => {
    base.dispose();
    fn.dispose();
  });
  const plan = (model: tf.LayersModel, opts: Parameters<typeof planLora>[1]) => planLora(model, opts, resolveSpec(opts));

  it('exact names, suffixes, RegExps and keywords', () => {
    expect(adapted(plan(base, { targets: 'fc2', rank: 2 }))).to.deep.equal(['fc2']);
    expect(adapted(plan(fn, { targets: '*_proj', rank: 2 }))).to.deep.equal(['enc_q_proj', 'enc_v_proj']);
    expect(adapted(plan(fn, { targets: /enc_(q|v)/, rank: 2 }))).to.deep.equal(['enc_q_proj', 'enc_v_proj']);
    expect(adapted(plan(fn, { targets: [/_q_/g, 'out'], rank: 2 }))).to.deep.equal(['enc_q_proj', 'out']); // /g ignored
    expect(adapted(plan(base, { targets: 'all-dense', rank: 2 }))).to.deep.equal(['fc1', 'fc2', 'head']);
    const c = cnn();
    expect(adapted(plan(c, { targets: 'all-conv2d', rank: 2 }))).to.deep.equal(['conv1', 'conv2']);
    c.dispose();
  });

  it("'all-linear' skips output heads, looking through weightless layers (softmax in the head, dropout before it)", () => {
    expect(adapted(plan(base, { targets: 'all-linear', rank: 2 }))).to.deep.equal(['fc1', 'fc2']);
    expect(adapted(plan(fn, { targets: 'all-linear', rank: 2 }))).to.deep.equal(['enc_q_proj', 'enc_v_proj']);
    // A head behind weightless layers is still the head.
    const m = tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [3], name: 'a' }), tf.layers.dense({ units: 2, name: 'h' }), tf.layers.activation({ activation: 'softmax', name: 'sm' }), tf.layers.dropout({ rate: 0.1, name: 'd' })] });
    expect(adapted(plan(m, { targets: 'all-linear', rank: 2 }))).to.deep.equal(['a']);
    m.dispose();
  });

  it("'output' selects the output heads: through weightless layers, every output of a multi-output model, inside a nested model; 'all-linear' is the other Dense layers", () => {
    const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotNormal({ seed }) });
    expect(adapted(plan(base, { targets: 'output', rank: 2 }))).to.deep.equal(['head']);
    expect(adapted(plan(fn, { targets: 'output', rank: 2 }))).to.deep.equal(['out']);
    // Two outputs, one behind a softmax layer.
    const x = tf.input({ shape: [3] });
    const h = tf.layers.dense({ units: 4, name: 'trunk', ...init(1) }).apply(x) as tf.SymbolicTensor;
    const o1 = tf.layers.dense({ units: 2, name: 'o1', ...init(2) }).apply(h) as tf.SymbolicTensor;
    const o2 = tf.layers.softmax({ name: 'sm' }).apply(tf.layers.dense({ units: 2, name: 'o2', ...init(3) }).apply(h)) as tf.SymbolicTensor;
    const twoHeads = tf.model({ inputs: x, outputs: [o1, o2] });
    expect(adapted(plan(twoHeads, { targets: 'output', rank: 1 }))).to.have.members(['o1', 'o2']).and.have.length(2);
    expect(adapted(plan(twoHeads, { targets: 'all-linear', rank: 1 }))).to.deep.equal(['trunk']);
    // The model's output is a nested model's: its last layer is the head.
    const tower = tf.sequential({ name: 'tower', layers: [tf.layers.dense({ units: 4, inputShape: [3], name: 'fc', ...init(4) }), tf.layers.dense({ units: 2, name: 'last', ...init(5) })] });
    const y = tf.input({ shape: [3] });
    const nested = tf.model({ inputs: y, outputs: tower.apply(tf.layers.dense({ units: 3, name: 'pre', ...init(6) }).apply(y)) as tf.SymbolicTensor });
    expect(adapted(plan(nested, { targets: 'output', rank: 1 }))).to.deep.equal(['tower/last']);
    expect(adapted(plan(nested, { targets: 'all-linear', rank: 1 }))).to.deep.equal(['pre', 'tower/fc']);
    expect(plan(nested, { targets: 'all-linear', rank: 1 }).available).to.include('tower/last (Dense 4x2, output head)');
    twoHeads.dispose();
    nested.dispose();
  });

  it("modulesToSave: ['output'] trains an auto-named head in full while 'all-linear' adapts the hidden layer", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 8, inputShape: [4], activation: 'relu', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
      ],
    });
    const [hidden, head] = model.layers.map((l) => l.name);
    expect(head).to.match(/^dense_Dense\d+$/); // auto-generated: the user need not know it
    const lora = applyLora(model, { targets: 'all-linear', modulesToSave: ['output'], rank: 2, seed: 3 });
    expect(adapted(lora)).to.deep.equal([hidden]);
    expect(lora.plan!.saved.map((s) => s.path)).to.deep.equal([head]);
    expect(lora.model.trainableWeights.map((w) => w.originalName)).to.have.members([`${hidden}/lora_A.default`, `${hidden}/lora_B.default`, `${head}/kernel`, `${head}/bias`]);
    const [hiddenLayer, headLayer] = lora.model.layers;
    const before = [hiddenLayer, headLayer].flatMap((l) => l.weights.map((w) => tf.clone(w.read())));
    const xs = tf.randomNormal([32, 4], 0, 1, 'float32', 4);
    const ys = tf.oneHot(tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 3), 'int32'), 3);
    lora.model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
    const history = await lora.model.fit(xs, ys, { epochs: 5, batchSize: 32, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses[losses.length - 1]).to.be.below(losses[0]);
    const after = [hiddenLayer, headLayer].flatMap((l) => l.weights.map((w) => w.read()));
    const names = [hiddenLayer, headLayer].flatMap((l) => l.weights.map((w) => w.originalName));
    const changed = names.filter((_, i) => maxAbsDiff(before[i], after[i]) > 0);
    // The hidden layer's frozen kernel and bias are the only weights that did not move.
    expect(changed).to.have.members([`${hidden}/lora_A.default`, `${hidden}/lora_B.default`, `${head}/kernel`, `${head}/bias`]);
    tf.dispose([...before, xs, ys]);
    lora.dispose();
    model.dispose();
  });

  it('exclude removes matches; every selector must match', () => {
    expect(adapted(plan(base, { targets: 'all-dense', exclude: ['head', /fc1/], rank: 2 }))).to.deep.equal(['fc2']);
    const p = plan(base, { targets: 'all-dense', exclude: 'nope', rank: 2 });
    expect(p.unmatched).to.deep.equal([{ option: 'exclude', selector: "'nope'", reason: 'matches no layer.' }]);
  });

  it('an unmatched target is an error that names it and lists the layers', () => {
    const err = thrown(() => applyLora(fn, { targets: ['enc_q_proj', 'q_proj', /^zzz/], rank: 2 }));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.include("targets selector 'q_proj' matches no layer. Did you mean the suffix selector '*q_proj' (matches enc_q_proj)?");
    expect(err.message).to.include('targets selector /^zzz/ matches no layer.');
    expect(err.message).to.include('Layers of this model: enc_q_proj (Dense 5x8), enc_v_proj (Dense 5x8), sum (Add), drop (Dropout), out (Dense 8x2, output head)');
  });

  it('a target naming a layer LoRA cannot wrap is an error', () => {
    const err = thrown(() => applyLora(fn, { targets: 'sum', rank: 2 }));
    expect(err.message).to.include("targets selector 'sum' matches only layers LoRA cannot wrap: sum (Add)");
  });

  it('modulesToSave stay trainable in full, must match, and must not overlap the targets', () => {
    const lora = applyLora(base, { targets: 'all-linear', rank: 2, modulesToSave: 'head' });
    const names = lora.model.trainableWeights.map((w) => w.originalName);
    expect(names).to.include.members(['head/kernel', 'head/bias']);
    expect(lora.trainableParams).to.equal(2 * (6 + 12) + 2 * (12 + 10) + 10 * 3 + 3);
    lora.dispose();
    expect(thrown(() => applyLora(base, { targets: 'all-dense', rank: 2, modulesToSave: 'head' })).message).to.include("layer 'head' is both a LoRA target and in modulesToSave");
    expect(thrown(() => applyLora(base, { targets: 'fc1', rank: 2, modulesToSave: 'classifier' })).message).to.include("modulesToSave selector 'classifier' matches no layer with weights");
  });

  it('dryRun logs the plan through the given logger and returns it, including unmatched selectors, without building', () => {
    const lines: string[] = [];
    const logger = { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(`warn: ${s}`) };
    const before = tf.memory().numTensors;
    const p = applyLora(base, { targets: ['fc1', 'missing'], rank: 4, dryRun: true, logger });
    expect(tf.memory().numTensors).to.equal(before);
    expect(adapted(p)).to.deep.equal(['fc1']);
    expect(p.adapted[0]).to.include({ fanIn: 6, fanOut: 12, baseParams: 6 * 12 + 12, adapterParams: 4 * 18 });
    expect(p.unmatched.map((u) => u.selector)).to.deep.equal(["'missing'"]);
    expect(lines.join('\n')).to.equal(formatPlan(p));
    expect(lines[0]).to.match(/fc1 +Dense +6x12 +84 +72 +'fc1'/);
    expect(lines[0]).to.include("UNMATCHED targets 'missing'");
  });

  it('dryRun without a logger shows the plan on the console; a real run logs nothing', () => {
    const log = console.log;
    const lines: string[] = [];
    console.log = (s: string) => lines.push(s);
    let p: LoraPlan;
    try {
      p = applyLora(base, { targets: 'fc1', rank: 2, dryRun: true });
      applyLora(base, { targets: 'fc1', rank: 2 }).dispose();
    } finally {
      console.log = log;
    }
    expect(lines).to.deep.equal([formatPlan(p)]);
  });

  it('rejects bad options with the option named', () => {
    const cases: [Parameters<typeof applyLora>[1], RegExp][] = [
      [{ targets: 'fc1', rank: 0 }, /option 'rank' must be an integer >= 1 \(got 0\)/],
      [{ targets: 'fc1', rank: 2.5 }, /option 'rank' must be an integer/],
      [{ targets: 'fc1', rank: 7 }, /option 'rank' = 7 exceeds min\(fan-in, fan-out\) = min\(6, 12\) of layer 'fc1'/],
      [{ targets: 'fc1', rank: 2, alpha: 0 }, /option 'alpha' must be a finite number > 0 \(got 0\)/],
      [{ targets: 'fc1', rank: 2, alpha: -1 }, /option 'alpha'/],
      [{ targets: 'fc1', rank: 2, alpha: NaN }, /option 'alpha'/],
      [{ targets: 'fc1', rank: 2, dropout: 1 }, /option 'dropout' must be in \[0, 1\)/],
      [{ targets: 'fc1', rank: 2, init: 'xavier' as 'kaiming' }, /option 'init' must be 'kaiming' or 'gaussian'/],
      [{ targets: [], rank: 2 }, /option 'targets' is empty/],
      [{ targets: '', rank: 2 }, /option 'targets': a selector must be/],
      [{ targets: 'fc1', rank: 2, adapterName: 'has space' }, /adapter name 'has space' is invalid/],
      [{ targets: 'fc1', rank: 2, seed: 0.5 }, /option 'seed' must be an integer/],
      [{ targets: 'all-dense', exclude: /fc|head/, rank: 2 }, /'exclude' removes every layer/],
    ];
    for (const [opts, re] of cases) expect(thrown(() => applyLora(base, opts)).message).to.match(re);
  });

  it('refuses unknown options, translating PEFT names and suggesting the nearest key, before building anything', () => {
    // Cast: TypeScript would catch these; JSON configs (tapfit train) and JavaScript do not.
    const bad = (o: object) => o as Parameters<typeof applyLora>[1];
    const tensors = tf.memory().numTensors;
    const err = thrown(() => applyLora(base, bad({ targets: 'fc1', rank: 4, lora_alpha: 32, lora_dropout: 0.1, r: 16, alphaa: 1 })));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal(ErrorCodes.CONFIG);
    expect(err.message).to.match(
      /^lora: applyLora: unknown option\(s\) 'lora_alpha' \(PEFT's name; here it is 'alpha'\), 'lora_dropout' \(PEFT's name; here it is 'dropout'\), 'r' \(PEFT's name; here it is 'rank'\), 'alphaa' \(did you mean 'alpha'\?\)\. Rename or remove them/,
    );
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(thrown(() => applyLora(base, bad({ target_modules: ['fc1'], rank: 2 }))).message).to.match(/'target_modules' \(PEFT's name; here it is 'targets'\)/);
    expect(thrown(() => applyLora(base, bad({ targets: 'fc1', rank: 2, use_dora: true }))).message).to.match(/'use_dora' \(a PEFT option this package does not implement\)/);
    expect(thrown(() => applyLora(base, bad({ targets: 'fc1', rank: 2, verbose: true }))).message).to.match(/'verbose' \(an option of the lora\(\) plugin/);
    // The plugin (checked when it is created), applyLoraToSegments and addAdapter too.
    expect(thrown(() => lora(bad({ targets: 'fc1', rank: 4, loraAlpha: 32, modules_to_save: ['head'] }))).message).to.match(
      /^lora: lora\(\): unknown option\(s\) 'loraAlpha' \(PEFT's name; here it is 'alpha'\), 'modules_to_save' \(PEFT's name; here it is 'modulesToSave'\)/,
    );
    expect(thrown(() => lora(bad({ targets: 'fc1', rank: 2, dryRun: true }))).message).to.match(/'dryRun' \(applyLora \/ applyLoraToSegments only; the plugin logs its plan with verbose: true\)/);
    expect(thrown(() => lora(bad({ targets: 'fc1', rank: 2, zzzzzzzz: 1 }))).message).to.match(/'zzzzzzzz' \(valid: rank, alpha, dropout, rsLora, init, targets, exclude, modulesToSave, adapterName, seed, verbose\)/);
    const segments = denseSegments();
    expect(thrown(() => applyLoraToSegments(segments, bad({ targets: 'fc1', rank: 2, lora_alpha: 8 }))).message).to.match(/^lora: applyLoraToSegments: unknown option\(s\) 'lora_alpha' \(PEFT's name; here it is 'alpha'\)/);
    disposeModel(segments);
    const wrapped = applyLora(base, { targets: 'fc1', rank: 2, seed: 1 });
    expect(thrown(() => wrapped.addAdapter('b', bad({ rank: 2, exclude: 'fc2' }))).message).to.match(/^lora: addAdapter: unknown option\(s\) 'exclude' \(valid: rank, alpha, dropout, rsLora, init, targets, seed\)/);
    expect(wrapped.adapters).to.deep.equal(['default']);
    wrapped.dispose();
  });

  it("refuses dryRun / verbose that are not booleans and a logger without info and warn, naming the option (dryRun: 'false' did a dry run)", () => {
    // Cast: TypeScript would catch these; JSON configs (tapfit train) and JavaScript do not.
    const bad = (o: object) => o as Parameters<typeof applyLora>[1];
    const config = (f: () => unknown): string => {
      const err = thrown(f);
      expect(err, err.message).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal(ErrorCodes.CONFIG);
      return err.message;
    };
    const tensors = tf.memory().numTensors;
    expect(config(() => applyLora(base, bad({ targets: 'fc1', rank: 2, dryRun: 'false' })))).to.match(/^lora: option 'dryRun' must be true or false \(got 'false'\); use the boolean true \(plan only\) or false \(build the model\)\.$/);
    expect(config(() => applyLora(base, bad({ targets: 'fc1', rank: 2, dryRun: 1 })))).to.match(/option 'dryRun' must be true or false \(got 1\)/);
    expect(config(() => applyLora(base, bad({ targets: 'fc1', rank: 2, dryRun: true, logger: {} })))).to.match(
      /^lora: option 'logger' must be a core Logger with info\(message\) and warn\(message\) methods \(it has no info or warn method\); pass e\.g\. new ConsoleLogger\(\) or new SilentLogger\(\) from @tapfit\/core/,
    );
    expect(config(() => applyLora(base, bad({ targets: 'fc1', rank: 2, dryRun: true, logger: { info() {} } })))).to.match(/\(it has no warn method\)/);
    expect(config(() => applyLora(base, bad({ targets: 'fc1', rank: 2, logger: console.log })))).to.match(/option 'logger' must be a core Logger .* \(got a function\)/);
    const segments = denseSegments();
    expect(config(() => applyLoraToSegments(segments, bad({ targets: 'fc1/param0', rank: 2, dryRun: 'true' })))).to.match(/option 'dryRun' must be true or false \(got 'true'\)/);
    expect(config(() => applyLoraToSegments(segments, bad({ targets: 'fc1/param0', rank: 2, dryRun: true, logger: null })))).to.match(/option 'logger' must be a core Logger .* \(got null\)/);
    disposeModel(segments);
    expect(tf.memory().numTensors).to.equal(tensors); // nothing built
    // The plugin, when it is created; a bad seed or adapter name too (they failed only at setup).
    expect(config(() => lora(bad({ targets: 'fc1', rank: 2, verbose: 'no' })))).to.match(/^lora: option 'verbose' must be true or false \(got 'no'\); use the boolean true \(log the plan at setup\) or false\.$/);
    expect(config(() => lora(bad({ targets: 'fc1', rank: 2, seed: '7' })))).to.match(/option 'seed' must be an integer \(got '7'\)/);
    expect(config(() => lora({ targets: 'fc1', rank: 2, adapterName: 'has space' }))).to.match(/adapter name 'has space' is invalid/);
    // A string number reads as a string, not as the number it spells.
    expect(config(() => applyLora(base, bad({ targets: 'fc1', rank: 2, alpha: '4' })))).to.match(/option 'alpha' must be a finite number > 0 \(got '4'\)/);
    expect(config(() => applyLora(base, bad({ targets: 'fc1', rank: 2, rsLora: 'true' })))).to.match(/option 'rsLora' must be true or false \(got 'true'\)/);
    // Booleans and a real logger are taken.
    expect(applyLora(base, { targets: 'fc1', rank: 2, dryRun: true, logger: { info() {}, warn() {} } }).adapted).to.have.length(1);
    const built = applyLora(base, { targets: 'fc1', rank: 2, dryRun: false });
    expect(built.model).to.be.instanceOf(tf.LayersModel);
    built.dispose();
    lora({ targets: 'fc1', rank: 2, verbose: false });
  });

  it('leaves the input model untouched and independent', () => {
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 5);
    const y0 = base.predict(x) as tf.Tensor;
    const trainable0 = base.trainableWeights.length;
    const lora = applyLora(base, { targets: 'all-dense', rank: 2 });
    expect(base.trainableWeights.length).to.equal(trainable0);
    lora.merge(); // changes the LoRA model's kernels only
    tf.tidy(() => {
      expect(sameValues(y0, base.predict(x) as tf.Tensor)).to.equal(true);
    });
    lora.dispose();
    tf.tidy(() => {
      expect(sameValues(y0, base.predict(x) as tf.Tensor)).to.equal(true);
    });
    tf.dispose([x, y0]);
  });

  it('refuses a model that already has LoRA layers', () => {
    const lora = applyLora(base, { targets: 'fc1', rank: 2 });
    expect(thrown(() => applyLora(lora.model, { targets: 'fc2', rank: 2 })).message).to.match(/already has LoRA layers \(fc1\).*addAdapter/);
    lora.dispose();
  });

  it('works inside nested models, with path names', () => {
    const inner = tf.sequential({ name: 'encoder', layers: [tf.layers.dense({ units: 4, inputShape: [3], name: 'fc' })] });
    const input = tf.input({ shape: [3] });
    const h = inner.apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2, name: 'head' }).apply(h) as tf.SymbolicTensor;
    const outer = tf.model({ inputs: input, outputs: out });
    const lora = applyLora(outer, { targets: 'encoder/fc', rank: 2 });
    expect(lora.layers.map((l) => l.name)).to.deep.equal(['fc']);
    const x = tf.randomNormal([2, 3]);
    tf.tidy(() => {
      expect(sameValues(outer.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    expect(lora.trainableParams).to.equal(2 * (3 + 4));
    tf.dispose(x);
    lora.dispose();
    outer.dispose();
  });
});
