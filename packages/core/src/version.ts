/** This package's version, checked against plugins' `core` ranges. */
export const CORE_VERSION: string = (require('../../package.json') as { version: string }).version;
