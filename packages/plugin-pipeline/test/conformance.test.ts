import { sgd } from '@tapfit/core';
import { describeConformance } from '@tapfit/core/testing';
import { pipeline } from '../src';

// 2 stages of the kit's tiny MLP (D = [2, 0]) with SC and LWP: registers, composes, resumes bitwise, no leaks.
describeConformance({ plugin: () => pipeline({ stages: 2, compensation: 'sc', prediction: 'lwp-velocity' }) });
describeConformance({ plugin: () => pipeline({ boundaries: ['out'], prediction: 'lwp-delta', extraDelay: 1 }) });
// One stage: no delay anywhere, so the functional twin is plain SGD with momentum, bit for bit.
describeConformance({
  plugin: () => pipeline({ stages: 1, compensation: 'sc', prediction: 'lwp-velocity' }),
  twin: () => ({ optimizer: sgd({ lr: 0.1, momentum: 0.9 }) }),
  twinTolerance: 0,
});
