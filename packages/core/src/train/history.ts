// fit's return value: defined with the hook types (the fitEnd hook hands it over).
export type { History } from '../hooks/types';
