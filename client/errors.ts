// One error type for everything the typed client, the HTTP API and the CLI report. `code` decides the HTTP status;
// `details` carries structured specifics (e.g. every bad field of a pipeline file with its path).

export type FerryErrorCode =
  | 'InvalidArgument' // 400
  | 'Unauthenticated' // 401
  | 'Forbidden' // 403
  | 'NotFound' // 404
  | 'Conflict' // 409
  | 'Unavailable' // 503
  | 'Internal'; // 500

export interface FieldError {
  path: string;
  message: string;
}

const HTTP_STATUS: Record<FerryErrorCode, number> = {
  InvalidArgument: 400,
  Unauthenticated: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  Unavailable: 503,
  Internal: 500,
};

export class FerryError extends Error {
  override readonly name = 'FerryError';
  constructor(
    readonly code: FerryErrorCode,
    message: string,
    readonly details?: { errors?: FieldError[] },
  ) {
    super(message);
  }

  get status(): number {
    return HTTP_STATUS[this.code];
  }

  /** The API's one error body shape. */
  toJSON(): { error: { code: FerryErrorCode; message: string; errors?: FieldError[] } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details?.errors ? { errors: this.details.errors } : {}),
      },
    };
  }
}
