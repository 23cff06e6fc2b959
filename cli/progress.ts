/** A one-line progress bar on stderr, drawn only when stderr is a terminal (never in logs/pipes). */
export interface Progress {
  update(done: number, total?: number): void;
  done(): void;
}

export function progress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update: () => undefined, done: () => undefined };
  const started = Date.now();
  let last = 0;
  const draw = (done: number, total?: number) => {
    const secs = (Date.now() - started) / 1000;
    const width = 30;
    const bar = total ? '#'.repeat(Math.round((width * done) / total)).padEnd(width, '.') : '';
    const eta = total && done ? ` eta ${Math.ceil((secs / done) * (total - done))}s` : '';
    stream.write(`\r${label} ${total ? `[${bar}] ${done}/${total}` : `${done}`} ${secs.toFixed(0)}s${eta}\x1b[K`);
  };
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 100 && done !== total) return;
      last = now;
      draw(done, total);
    },
    done() {
      stream.write('\r\x1b[K');
    },
  };
}
