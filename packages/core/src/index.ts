import 'reflect-metadata';

export * from './tensors';
export * from './transforms';
export * from './backend';
export * from './model/segment';
