/** What every runnable program (client, server, dispatcher) is to the CLI: started, then stopped once. */
export interface Program {
  /** Graceful stop: stop taking work, drain in-flight work within the grace period, release resources. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the program ends on its own (fatal error); optional. */
  readonly done?: Promise<void>;
  /** The program's logger, for what the CLI runs beside it (the idle collection's debug lines). */
  readonly logger?: { debug(fields: object, message: string): void };
}
