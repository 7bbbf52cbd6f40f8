export * from './types';
export * from './chain';
export * from './edit';
export * from './schedules';
export * from './scale-by-learning-rate';
export * from './momentum';
export * from './scale-by-adam';
export * from './add-decayed-weights';
export * from './clip-by-global-norm';
export * from './optimizers';
export * from './state';
export * from './serialize';
export * from './apply-updates';
export * from './step';

