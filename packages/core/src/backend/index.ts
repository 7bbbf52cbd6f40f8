// Backend selection and the wasm training shim (filled in by the backend work).
export {};
