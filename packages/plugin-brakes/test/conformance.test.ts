import { sgd, Trainer, TapfitError, type TapfitPlugin } from '@tapfit/core';
import { describeConformance, testTrainerOptions } from '@tapfit/core/testing';
import { expect } from 'chai';
import { adaptiveBrakingPlugin, brakesPlugin, delayedGradients, withAdaptiveBraking } from '../src';

// Every plugin of the package passes the core kit: registers, composes with no-op
// plugins, round-trips its state through a checkpoint, leaks nothing, equals its twin.

const optimizer = () => sgd({ lr: 0.05, momentum: 0.9 });

describeConformance({
  plugin: () => adaptiveBrakingPlugin({ rho: 1 }),
  trainer: () => ({ optimizer: optimizer() }),
  twin: () => ({ optimizer: withAdaptiveBraking(optimizer(), { rho: 1 }) }),
  twinTolerance: 0,
});

describeConformance({
  plugin: () => delayedGradients({ delay: 3 }),
  trainer: () => ({ optimizer: optimizer() }),
});

describeConformance({
  plugin: () => brakesPlugin({ delay: 2, rho: 1 }),
  trainer: () => ({ optimizer: optimizer() }),
});

describe('plugin-brakes: declared conflicts', () => {
  it('brakes refuses the standalone plugins it already contains, at registration', () => {
    const build = (plugins: TapfitPlugin[]) => () => new Trainer(testTrainerOptions({ optimizer: optimizer(), plugins }));
    expect(build([brakesPlugin({ delay: 2 }), delayedGradients({ delay: 1 })]))
      .to.throw(TapfitError, /plugins 'brakes' and 'delayed-gradients' conflict/)
      .with.property('code', 'TAPFIT_E_PLUGIN_CONFLICTS');
    expect(build([brakesPlugin(), adaptiveBrakingPlugin()])).to.throw(TapfitError, /plugins 'brakes' and 'adaptive-braking' conflict/);
    // without its delay part, brakes composes with a standalone delay
    expect(build([brakesPlugin(), delayedGradients({ delay: 1 })])).to.not.throw();
  });
});
