/** One redraw of a demo's status: the table a person reads and the same facts as one JSON object. */
export interface DemoFrame {
  lines: string[];
  json: Record<string, unknown>;
}

/** tty: redrawn in place every second; text: printed every 5 seconds; json: one JSON line every second. */
export type DisplayMode = 'tty' | 'text' | 'json';

export function displayMode(json: boolean): DisplayMode {
  if (json) return 'json';
  return process.stdout.isTTY ? 'tty' : 'text';
}

/** A message outside the table (stopping, done): a JSON line `{event, ...}` in json mode. */
export function announce(mode: DisplayMode, text: string, json: Record<string, unknown>): void {
  process.stdout.write(mode === 'json' ? `${JSON.stringify(json)}\n` : text);
}

/** Renders `frame()` once a second in the given mode. Returns the function that stops it. */
export function startDisplay(mode: DisplayMode, frame: () => Promise<DemoFrame>): () => void {
  let tick = 0;
  const render = async () => {
    const f = await frame();
    if (mode === 'json') process.stdout.write(`${JSON.stringify({ event: 'status', ...f.json })}\n`);
    else if (mode === 'tty') process.stdout.write(`\x1b[2J\x1b[H${f.lines.join('\n')}\n`);
    else if (tick % 5 === 0) process.stdout.write(`${f.lines.join('\n')}\n\n`);
    tick++;
  };
  let stopped = false;
  const timer = setInterval(() => void render().catch(() => undefined), 1000);
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
  };
}
