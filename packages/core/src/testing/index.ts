import 'reflect-metadata'; // tsyringe needs it loaded before any decorator runs
// @tapfit/core/testing: the plugin author's kit.
export { blobData, tinyModel, testTrainer, testTrainerOptions, noopPlugin } from './fixtures';
export { checkGradients, type GradientCheckResult } from './gradient-check';
export { checkNoLeaks } from './leak-check';
export { seededRandom } from './random';
export { trainOnBackend, gradientMismatch, largestGradientError, type BackendRun } from './backend-matrix';
export { conformanceChecks, describeConformance, type ConformanceSpec, type ConformanceCheck } from './conformance';
