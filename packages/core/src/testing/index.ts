/// <reference types="node" preserve="true" />
import 'reflect-metadata'; // tsyringe needs it loaded before any decorator runs
// @tapfit/core/testing: the plugin author's kit.
import { settleRequireTimeBackend, silenceCpuBanner } from '../backend/require-time';
export { blobData, batchNormModel, tinyModel, testTrainer, testTrainerOptions, noopPlugin } from './fixtures';
export { checkGradients, type GradientCheckResult } from './gradient-check';
export { checkNoLeaks } from './leak-check';
export { recordHostReads, type HostRead } from './host-reads';
export { seededRandom } from './random';
export { trainOnBackend, gradientMismatch, largestGradientError, GRADIENT_SCALE_FLOOR, type BackendRun } from './backend-matrix';
export { conformanceChecks, describeConformance } from './conformance';
export type { ConformanceSpec, ConformanceCheck } from './conformance-spec';

// The kit may be loaded before (or without) the package root: settle the backend as the root does
// (tfjs would otherwise build a fresh cpu backend on first use) and keep the output free of tfjs's banner.
settleRequireTimeBackend();
silenceCpuBanner();
