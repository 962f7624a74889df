export type FilterErrorCode = 'ACCEPT_UNREADABLE' | 'ACCEPT_INVALID' | 'MISSING_VARIABLE';

/** A problem with accept rules, found when they are loaded (never at request time). */
export class FilterError extends Error {
  readonly code: FilterErrorCode;
  constructor(code: FilterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FilterError';
    this.code = code;
  }
}
